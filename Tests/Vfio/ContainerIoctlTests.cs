using KernelModel.Kernel;
using static KernelModel.Tests.Vfio.VfioUser;

namespace KernelModel.Tests.Vfio;

public class ContainerIoctlTests : VfioTestBase
{
    [Fact]
    public void GetApiVersion_Always_ReturnsVfioApiVersionZero()
    {
        var (_, p) = CreateSut();
        var container = p.OpenContainer();

        var version = p.Ioctl(container, VFIO_GET_API_VERSION, 0UL);

        Assert.Equal(0, version);
    }

    public static TheoryData<ulong, long> ExtensionsBeforeSetIommu => new()
    {
        { VFIO_TYPE1_IOMMU, 1 },
        { VFIO_TYPE1v2_IOMMU, 0 },
        { 0x7777, 0 },
    };

    [Theory]
    [MemberData(nameof(ExtensionsBeforeSetIommu))]
    public void CheckExtension_BeforeSetIommu_AsksEveryBackend(ulong extension, long expected)
    {
        var (_, p) = CreateSut();
        var container = p.OpenContainer();

        var result = p.Ioctl(container, VFIO_CHECK_EXTENSION, extension);

        Assert.Equal(expected, result);
    }

    [Fact]
    public void CheckExtension_NoBackendLoaded_ReturnsZero()
    {
        // No plugins at all: the spec's driver names then stand for native drivers, which is
        // irrelevant here; only the container is used.
        var (_, p) = CreateSut(PluginSet.Empty);
        var container = p.OpenContainer();

        var result = p.Ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1_IOMMU);

        Assert.Equal(0, result);
    }

    [Theory]
    [InlineData(VFIO_TYPE1_IOMMU, 1)]
    [InlineData(VFIO_TYPE1v2_IOMMU, 0)]
    public void CheckExtension_AfterSetIommu_AsksTheChosenBackend(ulong extension, long expected)
    {
        var (_, p) = CreateSut();
        var (container, _) = p.OpenGroupInContainer(FakeMachine.Group);

        var result = p.Ioctl(container, VFIO_CHECK_EXTENSION, extension);

        Assert.Equal(expected, result);
    }

    [Fact]
    public void SetIommu_BeforeAnyGroup_ReturnsEinval()
    {
        var (_, p) = CreateSut();
        var container = p.OpenContainer();

        var result = p.SetIommu(container);

        Assert.Equal(Err(Errno.EINVAL), result);
    }

    [Fact]
    public void SetIommu_Twice_ReturnsEinval()
    {
        var (_, p) = CreateSut();
        var (container, _) = p.OpenGroupInContainer(FakeMachine.Group);

        var result = p.SetIommu(container);

        Assert.Equal(Err(Errno.EINVAL), result);
    }

    [Fact]
    public void SetIommu_UnknownExtension_ReturnsEnodevAndLeavesNoBackend()
    {
        var (_, p) = CreateSut();
        var container = p.OpenContainer();
        var group = p.OpenGroup(FakeMachine.Group);
        p.SetContainer(group, container);

        var result = p.SetIommu(container, 0x7777);

        Assert.Equal(Err(Errno.ENODEV), result);
        Assert.Equal(Err(Errno.EINVAL), p.GetDeviceFd(group, FakeMachine.Device));
        Assert.Equal(0, p.SetIommu(container));
    }

    [Fact]
    public void SetIommu_SecondGroupAfterBackendChosen_AttachesIt()
    {
        var (_, p) = CreateSut();
        var (container, _) = p.OpenGroupInContainer(FakeMachine.Group);
        var pair = p.OpenGroup(FakeMachine.PairGroup);

        var set = p.SetContainer(pair, container);
        var fd = p.GetDeviceFd(pair, FakeMachine.PairFirst);

        Assert.Equal(0, set);
        Assert.True(fd >= 0, $"GET_DEVICE_FD: {fd}");
    }

    [Fact]
    public void UnknownIoctl_NoBackend_ReturnsEinval()
    {
        var (_, p) = CreateSut();
        var container = p.OpenContainer();

        var result = p.Ioctl(container, VFIO_IOMMU_GET_INFO, new byte[16]);

        Assert.Equal(Err(Errno.EINVAL), result);
    }

    [Fact]
    public void UnknownIoctl_WithBackend_IsPassedToTheBackend()
    {
        var (_, p) = CreateSut();
        var (container, _) = p.OpenGroupInContainer(FakeMachine.Group);

        var result = p.Ioctl(container, VFIO_IOMMU_GET_INFO, new byte[16]);

        // The fake-iommu test double answers ENOTTY for what it does not know.
        Assert.Equal(Err(Errno.ENOTTY), result);
    }

    [Fact]
    public void LastGroupLeaves_ContainerLosesItsBackend()
    {
        var (_, p) = CreateSut();
        var (container, group) = p.OpenGroupInContainer(FakeMachine.Group);

        var unset = p.UnsetContainer(group);
        var reset = p.SetContainer(group, container);

        Assert.Equal(0, unset);
        Assert.Equal(0, reset);
        Assert.Equal(Err(Errno.EINVAL), p.GetDeviceFd(group, FakeMachine.Device));
        Assert.Equal(0, p.SetIommu(container));
    }
}
