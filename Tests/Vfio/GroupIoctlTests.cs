using System.Buffers.Binary;
using KernelModel.Kernel;
using static KernelModel.Tests.Vfio.VfioUser;

namespace KernelModel.Tests.Vfio;

public class GroupIoctlTests : VfioTestBase
{
    public enum GroupCall
    {
        SetContainerTwice,
        SetContainerBadFd,
        SetContainerGroupFdAsContainer,
        SetContainerDevMemFd,
        SetContainerShortBuffer,
        SetContainerIntegerArgument,
        SetContainerNonViableGroup,
        UnsetWithoutContainer,
        UnsetWhileDeviceFdOpen,
        GetDeviceFdWithoutContainer,
        GetDeviceFdWithoutIommu,
        GetDeviceFdUnknownName,
        GetDeviceFdOtherGroupsDevice,
        GetDeviceFdNameWithoutNul,
        GetStatusShortBuffer,
        GetStatusArgszBelowMinsz,
        UnknownGroupIoctl,
    }

    public static TheoryData<GroupCall, Errno> Errors => new()
    {
        { GroupCall.SetContainerTwice, Errno.EINVAL },
        { GroupCall.SetContainerBadFd, Errno.EBADF },
        { GroupCall.SetContainerGroupFdAsContainer, Errno.EINVAL },
        { GroupCall.SetContainerDevMemFd, Errno.EINVAL },
        { GroupCall.SetContainerShortBuffer, Errno.EFAULT },
        { GroupCall.SetContainerIntegerArgument, Errno.EFAULT },
        { GroupCall.SetContainerNonViableGroup, Errno.EPERM },
        { GroupCall.UnsetWithoutContainer, Errno.EINVAL },
        { GroupCall.UnsetWhileDeviceFdOpen, Errno.EBUSY },
        { GroupCall.GetDeviceFdWithoutContainer, Errno.EINVAL },
        { GroupCall.GetDeviceFdWithoutIommu, Errno.EINVAL },
        { GroupCall.GetDeviceFdUnknownName, Errno.ENODEV },
        { GroupCall.GetDeviceFdOtherGroupsDevice, Errno.ENODEV },
        { GroupCall.GetDeviceFdNameWithoutNul, Errno.EFAULT },
        { GroupCall.GetStatusShortBuffer, Errno.EFAULT },
        { GroupCall.GetStatusArgszBelowMinsz, Errno.EINVAL },
        { GroupCall.UnknownGroupIoctl, Errno.ENOTTY },
    };

    [Theory]
    [MemberData(nameof(Errors))]
    public void GroupIoctl_InvalidUse_ReturnsErrno(GroupCall call, Errno expected)
    {
        var (_, p) = CreateSut();
        var container = p.OpenContainer();
        var group = p.OpenGroup(FakeMachine.Group);

        var result = Run(p, call, container, group);

        Assert.Equal(Err(expected), result);
    }

    private static long Run(UserProcess p, GroupCall call, int container, int group)
    {
        switch (call)
        {
            case GroupCall.SetContainerTwice:
                Assert.Equal(0, p.SetContainer(group, container));
                return p.SetContainer(group, p.OpenContainer());
            case GroupCall.SetContainerBadFd:
                return p.SetContainer(group, 77);
            case GroupCall.SetContainerGroupFdAsContainer:
                return p.SetContainer(group, group);
            case GroupCall.SetContainerDevMemFd:
                return p.SetContainer(group, p.Open("/dev/mem"));
            case GroupCall.SetContainerShortBuffer:
                return p.Ioctl(group, VFIO_GROUP_SET_CONTAINER, new byte[2]);
            case GroupCall.SetContainerIntegerArgument:
                return p.Ioctl(group, VFIO_GROUP_SET_CONTAINER, (ulong)container);
            case GroupCall.SetContainerNonViableGroup:
                return p.SetContainer(p.OpenGroup(FakeMachine.NonViableGroup), container);
            case GroupCall.UnsetWithoutContainer:
                return p.UnsetContainer(group);
            case GroupCall.UnsetWhileDeviceFdOpen:
                Assert.Equal(0, p.SetContainer(group, container));
                Assert.Equal(0, p.SetIommu(container));
                Assert.True(p.GetDeviceFd(group, FakeMachine.Device) >= 0);
                return p.UnsetContainer(group);
            case GroupCall.GetDeviceFdWithoutContainer:
                return p.GetDeviceFd(group, FakeMachine.Device);
            case GroupCall.GetDeviceFdWithoutIommu:
                Assert.Equal(0, p.SetContainer(group, container));
                return p.GetDeviceFd(group, FakeMachine.Device);
            case GroupCall.GetDeviceFdUnknownName:
                Assert.Equal(0, p.SetContainer(group, container));
                Assert.Equal(0, p.SetIommu(container));
                return p.GetDeviceFd(group, "no-such-device");
            case GroupCall.GetDeviceFdOtherGroupsDevice:
                Assert.Equal(0, p.SetContainer(group, container));
                Assert.Equal(0, p.SetIommu(container));
                return p.GetDeviceFd(group, FakeMachine.PairFirst);
            case GroupCall.GetDeviceFdNameWithoutNul:
                return p.Ioctl(group, VFIO_GROUP_GET_DEVICE_FD, "fake0"u8.ToArray());
            case GroupCall.GetStatusShortBuffer:
                return p.Ioctl(group, VFIO_GROUP_GET_STATUS, new byte[4]);
            case GroupCall.GetStatusArgszBelowMinsz:
                var status = new byte[8];
                BinaryPrimitives.WriteUInt32LittleEndian(status, 4);
                return p.Ioctl(group, VFIO_GROUP_GET_STATUS, status);
            case GroupCall.UnknownGroupIoctl:
                return p.Ioctl(group, VFIO_GET_API_VERSION, 0UL);
            default:
                throw new ArgumentOutOfRangeException(nameof(call));
        }
    }

    [Fact]
    public void GetStatus_FreshGroup_IsViableWithoutContainer()
    {
        var (_, p) = CreateSut();
        var group = p.OpenGroup(FakeMachine.Group);

        var result = p.GetStatus(group, out var flags);

        Assert.Equal(0, result);
        Assert.Equal(VFIO_GROUP_FLAGS_VIABLE, flags);
    }

    [Fact]
    public void GetStatus_AfterSetContainer_IsViableAndContainerSet()
    {
        var (_, p) = CreateSut();
        var container = p.OpenContainer();
        var group = p.OpenGroup(FakeMachine.Group);
        p.SetContainer(group, container);

        var result = p.GetStatus(group, out var flags);

        Assert.Equal(0, result);
        Assert.Equal(VFIO_GROUP_FLAGS_VIABLE | VFIO_GROUP_FLAGS_CONTAINER_SET, flags);
    }

    [Fact]
    public void GetStatus_NativeDriverInGroup_IsNotViable()
    {
        var (_, p) = CreateSut();
        var group = p.OpenGroup(FakeMachine.NonViableGroup);

        var result = p.GetStatus(group, out var flags);

        Assert.Equal(0, result);
        Assert.Equal(0u, flags);
    }

    [Fact]
    public void SetContainer_NativeDriverUnbound_GroupBecomesViable()
    {
        var (machine, p) = CreateSut();
        var container = p.OpenContainer();
        var group = p.OpenGroup(FakeMachine.NonViableGroup);
        Assert.Equal(Err(Errno.EPERM), p.SetContainer(group, container));

        var unbound = machine.Sysfs.Unbind(FakeMachine.NativeDevice);
        var set = p.SetContainer(group, container);

        Assert.True(unbound.IsOk);
        Assert.Equal(0, set);
        p.GetStatus(group, out var flags);
        Assert.Equal(VFIO_GROUP_FLAGS_VIABLE | VFIO_GROUP_FLAGS_CONTAINER_SET, flags);
    }

    [Fact]
    public void SetContainer_NonViableGroup_LeavesContainerUnset()
    {
        var (_, p) = CreateSut();
        var container = p.OpenContainer();
        var group = p.OpenGroup(FakeMachine.NonViableGroup);

        p.SetContainer(group, container);
        var setIommu = p.SetIommu(container);

        Assert.Equal(Err(Errno.EINVAL), setIommu);
        p.GetStatus(group, out var flags);
        Assert.Equal(0u, flags & VFIO_GROUP_FLAGS_CONTAINER_SET);
    }

    [Fact]
    public void Open_GroupAlreadyOpen_ReturnsEbusy()
    {
        var (_, p) = CreateSut();
        var first = p.OpenGroup(FakeMachine.Group);

        var second = p.OpenGroup(FakeMachine.Group);

        Assert.True(first >= 0);
        Assert.Equal(Err(Errno.EBUSY), second);
    }

    [Fact]
    public void Open_GroupClosedByItsOpener_CanBeOpenedAgain()
    {
        var (_, p) = CreateSut();
        p.Close(p.OpenGroup(FakeMachine.Group));

        var again = p.OpenGroup(FakeMachine.Group);

        Assert.True(again >= 0, $"reopen: {again}");
    }

    [Fact]
    public void Open_UnregisteredGroup_ReturnsEnoent()
    {
        var (_, p) = CreateSut();

        var fd = p.OpenGroup(FakeMachine.UnboundGroup);

        Assert.Equal(Err(Errno.ENOENT), fd);
    }

    [Fact]
    public void Open_GroupWhoseDeviceFdOutlivedThePreviousOpen_ReturnsEbusy()
    {
        var (_, p) = CreateSut();
        var (_, group, device) = p.OpenDevice(FakeMachine.Group, FakeMachine.Device);
        p.Close(group);

        var reopened = p.OpenGroup(FakeMachine.Group);

        // The device fd still uses the previous open's container (vfio_group_fops_open).
        Assert.Equal(Err(Errno.EBUSY), reopened);
        p.Close(device);
        Assert.True(p.OpenGroup(FakeMachine.Group) >= 0);
    }

    [Fact]
    public void UnsetContainer_AfterDeviceFdClosed_Succeeds()
    {
        var (_, p) = CreateSut();
        var (_, group, device) = p.OpenDevice(FakeMachine.Group, FakeMachine.Device);
        Assert.Equal(Err(Errno.EBUSY), p.UnsetContainer(group));
        p.Close(device);

        var result = p.UnsetContainer(group);

        Assert.Equal(0, result);
        p.GetStatus(group, out var flags);
        Assert.Equal(VFIO_GROUP_FLAGS_VIABLE, flags);
    }

    [Fact]
    public void GetDeviceFd_GroupOfTwo_OpensEitherDevice()
    {
        var (machine, p) = CreateSut();
        var (_, group) = p.OpenGroupInContainer(FakeMachine.PairGroup);

        var first = p.GetDeviceFd(group, FakeMachine.PairFirst);
        var second = p.GetDeviceFd(group, FakeMachine.PairSecond);

        Assert.True(first >= 0 && second >= 0 && first != second, $"{first}, {second}");
        Assert.Equal(1, VfioDeviceOf(machine, FakeMachine.PairFirst).OpenCount);
        Assert.Equal(1, VfioDeviceOf(machine, FakeMachine.PairSecond).OpenCount);
    }
}
