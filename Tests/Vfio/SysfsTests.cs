using KernelModel.Kernel;
using KernelModel.Vfio;
using static KernelModel.Tests.Vfio.VfioUser;

namespace KernelModel.Tests.Vfio;

public class SysfsTests : VfioTestBase
{
    [Fact]
    public void Bind_VfioDriver_ProbesAndRegistersTheDevice()
    {
        var (machine, p) = CreateSut();

        var bound = machine.Sysfs.Bind(FakeMachine.UnboundDevice, FakeBusPlugin.Driver);

        Assert.True(bound.IsOk);
        Assert.Equal(FakeBusPlugin.Driver, machine.Sysfs.Driver(FakeMachine.UnboundDevice));
        var device = VfioDeviceOf(machine, FakeMachine.UnboundDevice);
        Assert.True(device.IsRegistered);
        Assert.True(p.OpenGroup(FakeMachine.UnboundGroup) >= 0);
    }

    public static TheoryData<string, string, Errno> BindErrors => new()
    {
        { FakeMachine.Device, FakeBusPlugin.Driver, Errno.EBUSY },
        { FakeMachine.NativeDevice, FakeBusPlugin.Driver, Errno.EBUSY },
        { FakeMachine.PciDevice, FakeBusPlugin.Driver, Errno.ENODEV },
        { "no-such-device", FakeBusPlugin.Driver, Errno.ENODEV },
        { FakeMachine.NoGroupDevice, FakeBusPlugin.Driver, Errno.EINVAL },
    };

    [Theory]
    [MemberData(nameof(BindErrors))]
    public void Bind_InvalidDeviceOrDriver_ReturnsErrno(string device, string driver, Errno expected)
    {
        var (machine, _) = CreateSut();
        var before = machine.Sysfs.Driver(device);

        var result = machine.Sysfs.Bind(device, driver);

        Assert.Equal(expected, result.Error);
        Assert.Equal(before, machine.Sysfs.Driver(device));
    }

    [Fact]
    public void Bind_DriverOverrideNamesAnotherDriver_ReturnsEnodev()
    {
        var (machine, _) = CreateSut();
        machine.Sysfs.SetDriverOverride(FakeMachine.UnboundDevice, FakeBusPlugin.DriverNoP2p);

        var result = machine.Sysfs.Bind(FakeMachine.UnboundDevice, FakeBusPlugin.Driver);

        Assert.Equal(Errno.ENODEV, result.Error);
        Assert.Null(machine.Sysfs.Driver(FakeMachine.UnboundDevice));
    }

    [Fact]
    public void DriversProbe_WithDriverOverride_BindsTheOverride()
    {
        var (machine, _) = CreateSut();
        machine.Sysfs.SetDriverOverride(FakeMachine.UnboundDevice, FakeBusPlugin.DriverNoP2p);

        var result = machine.Sysfs.DriversProbe(FakeMachine.UnboundDevice);

        Assert.True(result.IsOk);
        Assert.Equal(FakeBusPlugin.DriverNoP2p, machine.Sysfs.Driver(FakeMachine.UnboundDevice));
        Assert.False(VfioDeviceOf(machine, FakeMachine.UnboundDevice).AllowsPeerToPeer);
    }

    [Fact]
    public void DriversProbe_NoOverride_ReturnsEnodev()
    {
        var (machine, _) = CreateSut();

        var result = machine.Sysfs.DriversProbe(FakeMachine.UnboundDevice);

        Assert.Equal(Errno.ENODEV, result.Error);
    }

    [Fact]
    public void Unbind_VfioDriver_UnregistersTheDevice()
    {
        var (machine, _) = CreateSut();
        var device = VfioDeviceOf(machine, FakeMachine.Device);

        var result = machine.Sysfs.Unbind(FakeMachine.Device);

        Assert.True(result.IsOk);
        Assert.Null(machine.Sysfs.Driver(FakeMachine.Device));
        Assert.False(device.IsRegistered);
        Assert.DoesNotContain($"/dev/vfio/{FakeMachine.Group}", machine.DevNodes);
    }

    [Fact]
    public void Unbind_NotBound_ReturnsEnodev()
    {
        var (machine, _) = CreateSut();

        var result = machine.Sysfs.Unbind(FakeMachine.UnboundDevice);

        Assert.Equal(Errno.ENODEV, result.Error);
    }

    [Fact]
    public void Bind_NativeDriverIntoAGroup_MakesItNonViable()
    {
        var (machine, p) = CreateSut();
        machine.Sysfs.Unbind(FakeMachine.PairSecond);

        var bound = machine.Sysfs.Bind(FakeMachine.PairSecond, FakeMachine.NativeDriver);

        Assert.True(bound.IsOk);
        var group = p.OpenGroup(FakeMachine.PairGroup);
        p.GetStatus(group, out var flags);
        Assert.Equal(0u, flags & VFIO_GROUP_FLAGS_VIABLE);
        Assert.Equal(Err(Errno.EPERM), p.SetContainer(group, p.OpenContainer()));
    }

    [Fact]
    public void Bind_NativeDriverIntoAGroupInAContainer_ReturnsEbusy()
    {
        var (machine, p) = CreateSut();
        var (_, group) = p.OpenGroupInContainer(FakeMachine.PairGroup);
        machine.Sysfs.Unbind(FakeMachine.PairSecond);

        var bound = machine.Sysfs.Bind(FakeMachine.PairSecond, FakeMachine.NativeDriver);

        // The group's DMA is owned by its vfio user: iommu_device_use_default_domain() refuses.
        Assert.Equal(Errno.EBUSY, bound.Error);
        Assert.Null(machine.Sysfs.Driver(FakeMachine.PairSecond));
        p.GetStatus(group, out var flags);
        Assert.Equal(VFIO_GROUP_FLAGS_VIABLE | VFIO_GROUP_FLAGS_CONTAINER_SET, flags);
    }

    [Fact]
    public void IommuGroups_ListsGroupsAndTheirDevices()
    {
        var (machine, _) = CreateSut();

        var groups = machine.Sysfs.IommuGroups;
        var pair = machine.Sysfs.IommuGroupDevices(FakeMachine.PairGroup);

        Assert.Equal([10, 11, 12, 13, 14, 16], groups);
        Assert.Equal([FakeMachine.PairFirst, FakeMachine.PairSecond], pair);
        Assert.Empty(machine.Sysfs.IommuGroupDevices(99));
    }

    [Fact]
    public void Rebind_AfterUnbind_RegistersAFreshDevice()
    {
        var (machine, p) = CreateSut();
        var old = VfioDeviceOf(machine, FakeMachine.Device);
        machine.Sysfs.Unbind(FakeMachine.Device);

        var bound = machine.Sysfs.Bind(FakeMachine.Device, FakeBusPlugin.Driver);

        Assert.True(bound.IsOk);
        var fresh = VfioDeviceOf(machine, FakeMachine.Device);
        Assert.NotSame(old, fresh);
        Assert.True(fresh.IsRegistered);
        var (_, _, fd) = p.OpenDevice(FakeMachine.Group, FakeMachine.Device);
        Assert.Equal(1, fresh.OpenCount);
        Assert.Equal(0, old.OpenCount);
        p.Close(fd);
    }

    [Fact]
    public void Bind_WhileTheOldDeviceStillUnregisters_ReturnsEbusy()
    {
        var (machine, p) = CreateSut();
        var old = VfioDeviceOf(machine, FakeMachine.Device);
        var (_, _, fd) = p.OpenDevice(FakeMachine.Group, FakeMachine.Device);
        machine.Sysfs.Unbind(FakeMachine.Device);

        var bound = machine.Sysfs.Bind(FakeMachine.Device, FakeBusPlugin.Driver);

        Assert.Equal(Errno.EBUSY, bound.Error);
        Assert.True(old.IsUnregistering);
        p.Close(fd);
        Assert.True(machine.Sysfs.Bind(FakeMachine.Device, FakeBusPlugin.Driver).IsOk);
    }
}
