using KernelModel.Kernel;
using KernelModel.Vfio;
using NSubstitute;
using static KernelModel.Tests.Vfio.VfioUser;

namespace KernelModel.Tests.Vfio;

public class DeviceNotifierTests : VfioTestBase
{
    private static (INotifierCallback Callback, NotifierBlock Block) CreateBlock()
    {
        var callback = Substitute.For<INotifierCallback>();
        callback.Notify(Arg.Any<NotifierBlock>(), Arg.Any<ulong>(), Arg.Any<object?>()).Returns(NotifyResult.Ok);
        return (callback, new NotifierBlock(callback));
    }

    [Fact]
    public void RegisterNotifier_DeviceInNoContainer_ReturnsEinval()
    {
        var (machine, p) = CreateSut();
        var device = VfioDeviceOf(machine, FakeMachine.Device);
        p.OpenGroup(FakeMachine.Group);

        var result = device.RegisterNotifier(CreateBlock().Block);

        Assert.Equal(Errno.EINVAL, result.Error);
        Assert.Equal(0, device.NotifierCount);
    }

    [Fact]
    public void RegisterNotifier_ContainerWithoutIommu_ReturnsEinval()
    {
        var (machine, p) = CreateSut();
        var device = VfioDeviceOf(machine, FakeMachine.Device);
        var group = p.OpenGroup(FakeMachine.Group);
        p.SetContainer(group, p.OpenContainer());

        var result = device.RegisterNotifier(CreateBlock().Block);

        Assert.Equal(Errno.EINVAL, result.Error);
    }

    [Fact]
    public void RegisterNotifier_UnregisteredDevice_ReturnsEinval()
    {
        var (machine, _) = CreateSut();
        machine.TryGetDevice(FakeMachine.UnboundDevice, out var bus);

        var result = new TestVfioDevice(bus).RegisterNotifier(CreateBlock().Block);

        Assert.Equal(Errno.EINVAL, result.Error);
    }

    [Fact]
    public void RegisterNotifier_InContainer_TakesAContainerUserUntilUnregistered()
    {
        var (machine, p) = CreateSut();
        var device = VfioDeviceOf(machine, FakeMachine.Device);
        var (_, group) = p.OpenGroupInContainer(FakeMachine.Group);
        var (_, block) = CreateBlock();

        var registered = device.RegisterNotifier(block);

        Assert.True(registered.IsOk);
        Assert.Equal(1, device.NotifierCount);
        Assert.Equal(Err(Errno.EBUSY), p.UnsetContainer(group));
        Assert.True(device.UnregisterNotifier(block).IsOk);
        Assert.Equal(0, p.UnsetContainer(group));
    }

    [Fact]
    public void RegisterNotifier_SameBlockTwice_ReturnsEexistAndKeepsOneContainerUser()
    {
        var (machine, p) = CreateSut();
        var device = VfioDeviceOf(machine, FakeMachine.Device);
        var (_, group) = p.OpenGroupInContainer(FakeMachine.Group);
        var (_, block) = CreateBlock();
        device.RegisterNotifier(block);

        var again = device.RegisterNotifier(block);

        Assert.Equal(Errno.EEXIST, again.Error);
        device.UnregisterNotifier(block);
        Assert.Equal(0, p.UnsetContainer(group));
    }

    [Fact]
    public void UnregisterNotifier_NotRegistered_ReturnsEnoentAndDropsNoContainerUser()
    {
        var (machine, p) = CreateSut();
        var device = VfioDeviceOf(machine, FakeMachine.Device);
        var (_, group, fd) = p.OpenDevice(FakeMachine.Group, FakeMachine.Device);

        var result = device.UnregisterNotifier(CreateBlock().Block);

        Assert.Equal(Errno.ENOENT, result.Error);
        Assert.Equal(Err(Errno.EBUSY), p.UnsetContainer(group));
        p.Close(fd);
        Assert.Equal(0, p.UnsetContainer(group));
    }

    [Fact]
    public void RegisterNotifier_GroupFdClosed_KeepsTheContainer()
    {
        var (machine, p) = CreateSut();
        var device = VfioDeviceOf(machine, FakeMachine.Device);
        var (_, group) = p.OpenGroupInContainer(FakeMachine.Group);
        var (_, block) = CreateBlock();
        device.RegisterNotifier(block);

        p.Close(group);
        var reopenWhileRegistered = p.OpenGroup(FakeMachine.Group);
        device.UnregisterNotifier(block);
        var reopenAfter = p.OpenGroup(FakeMachine.Group);

        Assert.Equal(Err(Errno.EBUSY), reopenWhileRegistered);
        Assert.True(reopenAfter >= 0, $"reopen: {reopenAfter}");
        p.GetStatus(reopenAfter, out var flags);
        Assert.Equal(VFIO_GROUP_FLAGS_VIABLE, flags);
    }

    [Fact]
    public void Close_LastFd_DeliversReleaseOnce()
    {
        var (machine, p) = CreateSut();
        var device = VfioDeviceOf(machine, FakeMachine.Device);
        var (_, group, first) = p.OpenDevice(FakeMachine.Group, FakeMachine.Device);
        var second = (int)p.GetDeviceFd(group, FakeMachine.Device);
        var (callback, block) = CreateBlock();
        device.RegisterNotifier(block);

        p.Close(first);
        callback.DidNotReceiveWithAnyArgs().Notify(default!, default, default);
        p.Close(second);

        callback.Received(1).Notify(block, (ulong)VfioDeviceEvent.Release, device);
    }

    [Fact]
    public void Release_UnregisterFromInsideCallback_ReturnsEdeadlk()
    {
        var (machine, p) = CreateSut();
        var device = VfioDeviceOf(machine, FakeMachine.Device);
        var (_, _, fd) = p.OpenDevice(FakeMachine.Group, FakeMachine.Device);
        var (callback, block) = CreateBlock();
        KResult? inside = null;
        callback.Notify(block, (ulong)VfioDeviceEvent.Release, device).Returns(_ =>
        {
            inside = device.UnregisterNotifier(block);
            return NotifyResult.Ok;
        });
        device.RegisterNotifier(block);

        p.Close(fd);

        Assert.Equal(Errno.EDEADLK, inside?.Error);
        Assert.Equal(1, device.NotifierCount);
        Assert.True(device.UnregisterNotifier(block).IsOk);
    }

    [Fact]
    public void Release_UnregisterDeferredToSystemWorkqueue_SucceedsAtSyscallReturn()
    {
        var (machine, p) = CreateSut();
        var device = VfioDeviceOf(machine, FakeMachine.Device);
        var (_, group, fd) = p.OpenDevice(FakeMachine.Group, FakeMachine.Device);
        var (callback, block) = CreateBlock();
        KResult? deferred = null;
        callback.Notify(block, (ulong)VfioDeviceEvent.Release, device).Returns(_ =>
        {
            machine.SystemWorkqueue.Schedule(() => deferred = device.UnregisterNotifier(block), "vfio notifier unregister");
            return NotifyResult.Ok;
        });
        device.RegisterNotifier(block);

        p.Close(fd);

        Assert.True(deferred?.IsOk);
        Assert.Equal(0, device.NotifierCount);
        Assert.Equal(0, machine.SystemWorkqueue.PendingCount);
        Assert.Equal(0, p.UnsetContainer(group));
    }
}
