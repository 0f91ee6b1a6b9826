using System.Buffers.Binary;
using System.Text;

namespace KernelModel.Tests.Vfio;

/// <summary>
/// The legacy vfio uAPI as a user program calls it, with linux/vfio.h's numbers written out here
/// (not taken from the model) so that a wrong number in the core fails these tests.
/// </summary>
internal static class VfioUser
{
    public const uint VFIO_GET_API_VERSION = 0x3b64;
    public const uint VFIO_CHECK_EXTENSION = 0x3b65;
    public const uint VFIO_SET_IOMMU = 0x3b66;
    public const uint VFIO_GROUP_GET_STATUS = 0x3b67;
    public const uint VFIO_GROUP_SET_CONTAINER = 0x3b68;
    public const uint VFIO_GROUP_UNSET_CONTAINER = 0x3b69;
    public const uint VFIO_GROUP_GET_DEVICE_FD = 0x3b6a;
    public const uint VFIO_IOMMU_GET_INFO = 0x3b70;

    public const ulong VFIO_TYPE1_IOMMU = 1;
    public const ulong VFIO_TYPE1v2_IOMMU = 3;

    public const uint VFIO_GROUP_FLAGS_VIABLE = 1;
    public const uint VFIO_GROUP_FLAGS_CONTAINER_SET = 2;

    /// <summary>VFIO_PCI_OFFSET_SHIFT: the file offset of region <c>index</c> is index &lt;&lt; 40.</summary>
    public const int OffsetShift = 40;

    public static int OpenContainer(this UserProcess p) => p.Open("/dev/vfio/vfio");

    public static int OpenGroup(this UserProcess p, int group) => p.Open($"/dev/vfio/{group}");

    public static long SetContainer(this UserProcess p, int groupFd, int containerFd)
    {
        Span<byte> arg = stackalloc byte[sizeof(int)];
        BinaryPrimitives.WriteInt32LittleEndian(arg, containerFd);
        return p.Ioctl(groupFd, VFIO_GROUP_SET_CONTAINER, arg);
    }

    public static long UnsetContainer(this UserProcess p, int groupFd) => p.Ioctl(groupFd, VFIO_GROUP_UNSET_CONTAINER, 0UL);

    public static long SetIommu(this UserProcess p, int containerFd, ulong type = VFIO_TYPE1_IOMMU) =>
        p.Ioctl(containerFd, VFIO_SET_IOMMU, type);

    /// <summary>VFIO_GROUP_GET_STATUS with a full struct vfio_group_status; the flags on success.</summary>
    public static long GetStatus(this UserProcess p, int groupFd, out uint flags)
    {
        Span<byte> status = stackalloc byte[8];
        BinaryPrimitives.WriteUInt32LittleEndian(status, 8);
        var r = p.Ioctl(groupFd, VFIO_GROUP_GET_STATUS, status);
        flags = BinaryPrimitives.ReadUInt32LittleEndian(status[4..]);
        return r;
    }

    /// <summary>VFIO_GROUP_GET_DEVICE_FD: the argument is the device's NUL-terminated name.</summary>
    public static long GetDeviceFd(this UserProcess p, int groupFd, string name)
    {
        var arg = new byte[Encoding.UTF8.GetByteCount(name) + 1];
        Encoding.UTF8.GetBytes(name, arg);
        return p.Ioctl(groupFd, VFIO_GROUP_GET_DEVICE_FD, arg);
    }

    /// <summary>The whole legacy sequence: container, group, SET_CONTAINER, SET_IOMMU (type1). Asserts each step.</summary>
    public static (int Container, int Group) OpenGroupInContainer(this UserProcess p, int group)
    {
        var container = p.OpenContainer();
        Assert.True(container >= 0, $"open container: {container}");
        var groupFd = p.OpenGroup(group);
        Assert.True(groupFd >= 0, $"open group {group}: {groupFd}");
        Assert.Equal(0, p.SetContainer(groupFd, container));
        Assert.Equal(0, p.SetIommu(container));
        return (container, groupFd);
    }

    /// <summary><see cref="OpenGroupInContainer"/> then GET_DEVICE_FD. Asserts each step.</summary>
    public static (int Container, int Group, int Device) OpenDevice(this UserProcess p, int group, string device)
    {
        var (container, groupFd) = p.OpenGroupInContainer(group);
        var deviceFd = p.GetDeviceFd(groupFd, device);
        Assert.True(deviceFd >= 0, $"GET_DEVICE_FD {device}: {deviceFd}");
        return (container, groupFd, (int)deviceFd);
    }

    /// <summary>mmap of region <paramref name="index"/> of a device fd, MAP_SHARED, read/write.</summary>
    public static long MmapRegion(this UserProcess p, int deviceFd, ulong length, ulong offsetInRegion = 0, ulong index = 0,
        MapFlags flags = MapFlags.Shared) =>
        p.Mmap(0, length, Prot.Read | Prot.Write, flags, deviceFd, (index << OffsetShift) + offsetInRegion);

    /// <summary>The negative errno of a syscall result, for readable asserts.</summary>
    public static long Err(Errno errno) => -(long)errno;
}
