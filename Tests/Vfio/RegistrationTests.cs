using KernelModel.Kernel;

namespace KernelModel.Tests.Vfio;

public class RegistrationTests : VfioTestBase
{
    [Fact]
    public void RegisterDevice_NoIommuGroup_ReturnsEinval()
    {
        var (machine, _) = CreateSut();
        machine.TryGetDevice(FakeMachine.NoGroupDevice, out var device);

        var result = machine.Vfio.RegisterDevice(new TestVfioDevice(device));

        Assert.Equal(Errno.EINVAL, result.Error);
        Assert.DoesNotContain(machine.Vfio.Devices, d => d.Device == device);
    }

    [Fact]
    public void RegisterDevice_SameHandleTwice_ReturnsEbusy()
    {
        var (machine, _) = CreateSut();
        var registered = VfioDeviceOf(machine, FakeMachine.Device);

        var result = machine.Vfio.RegisterDevice(registered);

        Assert.Equal(Errno.EBUSY, result.Error);
        Assert.Equal(1, registered.RefCount);
    }

    [Fact]
    public void RegisterDevice_SecondHandleForABoundDevice_ReturnsEbusy()
    {
        var (machine, _) = CreateSut();
        machine.TryGetDevice(FakeMachine.Device, out var device);
        var second = new TestVfioDevice(device);

        var result = machine.Vfio.RegisterDevice(second);

        Assert.Equal(Errno.EBUSY, result.Error);
        Assert.False(second.IsRegistered);
    }

    [Fact]
    public void RegisterDevice_FirstOfItsGroup_ReturnsTypedDeviceAndCreatesGroupNode()
    {
        var (machine, _) = CreateSut();
        machine.TryGetDevice(FakeMachine.UnboundDevice, out var device);

        var result = machine.Vfio.RegisterDevice(new TestVfioDevice(device));

        Assert.True(result.TryGetValue(out TestVfioDevice typed));
        Assert.True(typed.IsRegistered);
        Assert.Same(machine.Vfio, typed.Core);
        Assert.Equal(1, typed.RefCount);
        Assert.Contains($"/dev/vfio/{FakeMachine.UnboundGroup}", machine.DevNodes);
    }

    [Fact]
    public void UnregisterDevice_NoOpenFds_CompletesAtOnceAndRemovesGroupNode()
    {
        var (machine, _) = CreateSut();
        machine.TryGetDevice(FakeMachine.UnboundDevice, out var device);
        var sut = machine.Vfio.RegisterDevice(new TestVfioDevice(device)).Value;

        machine.Vfio.UnregisterDevice(sut);

        Assert.False(sut.IsRegistered);
        Assert.Equal(0, sut.RefCount);
        Assert.Empty(sut.Requests);
        Assert.DoesNotContain($"/dev/vfio/{FakeMachine.UnboundGroup}", machine.DevNodes);
    }

    [Fact]
    public void UnregisterDevice_FdOpen_CallsRequestAndCompletesOnLastClose()
    {
        var (machine, p) = CreateSut();
        machine.TryGetDevice(FakeMachine.UnboundDevice, out var device);
        var sut = machine.Vfio.RegisterDevice(new TestVfioDevice(device)).Value;
        var (_, group, fd) = p.OpenDevice(FakeMachine.UnboundGroup, FakeMachine.UnboundDevice);

        machine.Vfio.UnregisterDevice(sut);

        Assert.Equal([0u], sut.Requests);
        Assert.True(sut.IsRegistered);
        Assert.True(sut.IsUnregistering);
        Assert.Equal(VfioUser.Err(Errno.ENODEV), p.GetDeviceFd(group, FakeMachine.UnboundDevice));

        Assert.Equal(0, p.Close(fd));

        Assert.False(sut.IsRegistered);
        Assert.False(sut.IsUnregistering);
        Assert.Equal(0, sut.RefCount);
        Assert.Equal(1, sut.Closes);
        Assert.DoesNotContain($"/dev/vfio/{FakeMachine.UnboundGroup}", machine.DevNodes);
        Assert.Equal(0, p.Close(group));
    }

    [Fact]
    public void Unbind_VfioDriverWithFdOpen_RequestsReleaseThroughTheDriver()
    {
        var (machine, p) = CreateSut();
        var sut = VfioDeviceOf(machine, FakeMachine.Device);
        var (_, _, fd) = p.OpenDevice(FakeMachine.Group, FakeMachine.Device);

        var unbound = machine.Sysfs.Unbind(FakeMachine.Device);

        Assert.True(unbound.IsOk);
        Assert.Equal(1u, sut.RequestCount);
        Assert.True(sut.IsRegistered);
        p.Close(fd);
        Assert.False(sut.IsRegistered);
        Assert.Equal(0, sut.RefCount);
    }

    [Fact]
    public void UnregisterDevice_BackendHoldsVmaReference_CompletesOnlyWhenItIsPut()
    {
        var (machine, p) = CreateSut();
        var device = VfioDeviceOf(machine, FakeMachine.Device);
        var (container, group, fd) = p.OpenDevice(FakeMachine.Group, FakeMachine.Device);
        var va = (ulong)p.MmapRegion(fd, FakeMachine.RegionSize);
        var held = machine.Vfio.GetDeviceFromVma(p.Mm.FindVma(va)!).Value;
        p.Munmap(va, FakeMachine.RegionSize);
        p.Close(fd);

        machine.Sysfs.Unbind(FakeMachine.Device);

        Assert.Equal(1u, device.RequestCount);
        Assert.True(device.IsRegistered);
        held.Put();
        Assert.False(device.IsRegistered);
        Assert.Equal(0, device.RefCount);
        p.Close(group);
        p.Close(container);
    }

    [Fact]
    public void UnregisterDevice_NotifierStillRegistered_ItsContainerUserIsPutOnTheSameGroup()
    {
        var (machine, p) = CreateSut();
        var device = VfioDeviceOf(machine, FakeMachine.Device);
        var (container, group) = p.OpenGroupInContainer(FakeMachine.Group);
        var block = new NotifierBlock((_, _, _) => NotifyResult.Ok);
        Assert.True(device.RegisterNotifier(block).IsOk);
        machine.Sysfs.Unbind(FakeMachine.Device);
        Assert.False(device.IsRegistered);

        var unregistered = device.UnregisterNotifier(block);
        p.Close(group);

        // The old group left the container, so a new group of the same IOMMU group can join it.
        Assert.True(unregistered.IsOk);
        Assert.True(machine.Sysfs.Bind(FakeMachine.Device, FakeBusPlugin.Driver).IsOk);
        var regroup = p.OpenGroup(FakeMachine.Group);
        Assert.Equal(0, p.SetContainer(regroup, container));
        Assert.Equal(0, p.SetIommu(container));
    }
}
