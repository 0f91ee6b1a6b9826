using KernelModel.Kernel;
using KernelModel.Vfio;
using NSubstitute;
using static KernelModel.Tests.Vfio.VfioUser;

namespace KernelModel.Tests.Vfio;

public class DeviceFdLifecycleTests : VfioTestBase
{
    private const ulong Length = FakeMachine.RegionSize;

    [Fact]
    public void GetDeviceFd_TwoFds_CountsOpensAndReferences()
    {
        var (machine, p) = CreateSut();
        var device = VfioDeviceOf(machine, FakeMachine.Device);
        var (_, group, first) = p.OpenDevice(FakeMachine.Group, FakeMachine.Device);

        var second = p.GetDeviceFd(group, FakeMachine.Device);

        Assert.True(second >= 0 && second != first);
        Assert.Equal(2, device.OpenCount);
        Assert.Equal(3, device.RefCount);
    }

    [Fact]
    public void Close_EveryFd_RefCountBackToRegistrationOnly()
    {
        var (machine, p) = CreateSut();
        var device = VfioDeviceOf(machine, FakeMachine.Device);
        var (container, group, first) = p.OpenDevice(FakeMachine.Group, FakeMachine.Device);
        var second = (int)p.GetDeviceFd(group, FakeMachine.Device);

        p.Close(first);
        p.Close(second);
        p.Close(group);
        p.Close(container);

        Assert.Equal(0, device.OpenCount);
        Assert.Equal(1, device.RefCount);
        Assert.True(device.IsRegistered);
        Assert.Equal(0, p.Files.Count);
    }

    [Fact]
    public void Close_FdWhileMmapRemains_DeviceFileReleasedOnlyAtMunmap()
    {
        var (machine, p) = CreateSut();
        var device = VfioDeviceOf(machine, FakeMachine.Device);
        var callback = Substitute.For<INotifierCallback>();
        var (_, _, fd) = p.OpenDevice(FakeMachine.Group, FakeMachine.Device);
        Assert.True(device.RegisterNotifier(new NotifierBlock(callback)).IsOk);
        var va = p.MmapRegion(fd, Length);
        Assert.True(va > 0, $"mmap: {va}");

        p.Close(fd);

        Assert.Equal(1, device.OpenCount);
        callback.DidNotReceiveWithAnyArgs().Notify(default!, default, default);

        p.Munmap((ulong)va, Length);

        Assert.Equal(0, device.OpenCount);
        callback.Received(1).Notify(Arg.Any<NotifierBlock>(), (ulong)VfioDeviceEvent.Release, device);
        Assert.Equal(1, device.RefCount);
    }

    [Fact]
    public void Munmap_LastMappingAfterFdClosed_RefCountBackToOne()
    {
        var (machine, p) = CreateSut();
        var device = VfioDeviceOf(machine, FakeMachine.Device);
        var (container, group, fd) = p.OpenDevice(FakeMachine.Group, FakeMachine.Device);
        var va = (ulong)p.MmapRegion(fd, Length);
        p.Close(fd);
        p.Close(group);
        p.Close(container);
        Assert.Equal(2, device.RefCount);

        p.Munmap(va, Length);

        Assert.Equal(1, device.RefCount);
        Assert.Equal(0, device.Mapping.MappedVmaCount);
    }

    [Fact]
    public void Exit_WithFdsAndMappings_ReleasesDeviceAndDissolvesContainer()
    {
        var (machine, p) = CreateSut();
        var device = VfioDeviceOf(machine, FakeMachine.Device);
        var (_, _, fd) = p.OpenDevice(FakeMachine.Group, FakeMachine.Device);
        p.MmapRegion(fd, Length);

        p.Exit();

        Assert.Equal(0, device.OpenCount);
        Assert.Equal(1, device.RefCount);
        var next = machine.Spawn();
        var group = next.OpenGroup(FakeMachine.Group);
        Assert.True(group >= 0, $"reopen after exit: {group}");
        next.GetStatus(group, out var flags);
        Assert.Equal(VFIO_GROUP_FLAGS_VIABLE, flags);
    }

    [Fact]
    public void CloseGroupFd_DeviceFdOpen_KeepsContainerUntilDeviceCloses()
    {
        var (machine, p) = CreateSut();
        var device = VfioDeviceOf(machine, FakeMachine.Device);
        var (container, group, fd) = p.OpenDevice(FakeMachine.Group, FakeMachine.Device);
        p.Close(group);
        p.Close(container);

        var va = p.MmapRegion(fd, Length);
        var read = p.ReadMemory((ulong)va, new byte[8]);

        Assert.Equal(8, read);
        Assert.Equal(0, p.Munmap((ulong)va, Length));
        Assert.Equal(0, p.Close(fd));
        Assert.Equal(0, device.OpenCount);
        var reopened = p.OpenGroup(FakeMachine.Group);
        p.GetStatus(reopened, out var flags);
        Assert.Equal(VFIO_GROUP_FLAGS_VIABLE, flags);
    }

    [Fact]
    public void OpenDevice_RegionsHeldForDmaOnlyWhileOpen()
    {
        var (machine, p) = CreateSut();
        var device = VfioDeviceOf(machine, FakeMachine.Device);
        var region = device.Device.Mmio[0];
        Assert.False(region.DmaHeld);

        var (_, _, fd) = p.OpenDevice(FakeMachine.Group, FakeMachine.Device);
        var whileOpen = region.DmaHeld;
        p.Close(fd);

        Assert.True(whileOpen);
        Assert.False(region.DmaHeld);
    }

    [Fact]
    public void DeviceFd_DriverWithoutIoctlReadWrite_ReturnsEinval()
    {
        var (_, p) = CreateSut();
        var (_, _, fd) = p.OpenDevice(FakeMachine.Group, FakeMachine.Device);

        Assert.Equal(Err(Errno.EINVAL), p.Ioctl(fd, 0x3b6b, new byte[16]));
        Assert.Equal(Err(Errno.EINVAL), p.Pread(fd, new byte[4], 0));
        Assert.Equal(Err(Errno.EINVAL), p.Pwrite(fd, new byte[4], 0));
    }

    [Fact]
    public void GetDeviceFd_FdTableFull_ReturnsEmfileAndUndoesTheOpen()
    {
        var (machine, _) = CreateSut();
        var p = machine.Spawn(new ProcessOptions { FileLimit = 2 });
        var device = VfioDeviceOf(machine, FakeMachine.Device);
        var (_, group) = p.OpenGroupInContainer(FakeMachine.Group);

        var fd = p.GetDeviceFd(group, FakeMachine.Device);

        Assert.Equal(Err(Errno.EMFILE), fd);
        Assert.Equal(0, device.OpenCount);
        Assert.Equal(1, device.RefCount);
        Assert.Equal(0, p.UnsetContainer(group));
    }

    [Fact]
    public void GetDeviceFd_OpenDeviceFails_ReturnsItsErrnoAndDropsTheContainerUser()
    {
        var (machine, p) = CreateSut();
        machine.TryGetDevice(FakeMachine.UnboundDevice, out var bus);
        var device = machine.Vfio.RegisterDevice(new TestVfioDevice(bus) { OpenError = Errno.EIO }).Value;
        var (_, group) = p.OpenGroupInContainer(FakeMachine.UnboundGroup);

        var fd = p.GetDeviceFd(group, FakeMachine.UnboundDevice);

        Assert.Equal(Err(Errno.EIO), fd);
        Assert.Equal((1, 0), (device.Opens, device.Closes));
        Assert.Equal(0, device.OpenCount);
        Assert.Equal(1, device.RefCount);
        Assert.Equal(0, p.UnsetContainer(group));
    }

    [Fact]
    public void GetDeviceFd_SecondFd_OpensTheDeviceOnceAndClosesItOnce()
    {
        var (machine, p) = CreateSut();
        machine.TryGetDevice(FakeMachine.UnboundDevice, out var bus);
        var device = machine.Vfio.RegisterDevice(new TestVfioDevice(bus)).Value;
        var (_, group, first) = p.OpenDevice(FakeMachine.UnboundGroup, FakeMachine.UnboundDevice);
        var second = (int)p.GetDeviceFd(group, FakeMachine.UnboundDevice);

        p.Close(first);
        var closesAfterFirst = device.Closes;
        p.Close(second);

        Assert.Equal(1, device.Opens);
        Assert.Equal(0, closesAfterFirst);
        Assert.Equal(1, device.Closes);
    }
}
