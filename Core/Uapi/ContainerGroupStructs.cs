using System.Runtime.InteropServices;

namespace KernelModel.Uapi;

// Layouts are those of an LP64 Linux (x86_64, arm64, ppc64le): __u64 is 8-byte aligned and pointers are 8 bytes.
// Byte order is the host's; the model runs little-endian like those machines.

/// <summary>struct vfio_info_cap_header: the header every capability in an info chain starts with.</summary>
[CName("vfio_info_cap_header")]
[StructLayout(LayoutKind.Sequential)]
public struct VfioInfoCapHeader
{
    /// <summary>Capability ID (per info type, e.g. VFIO_REGION_INFO_CAP_SPARSE_MMAP).</summary>
    [CName("id")] public ushort Id;

    /// <summary>Version specific to the capability ID.</summary>
    [CName("version")] public ushort Version;

    /// <summary>Offset of the next capability from the start of the info struct; 0 ends the chain.</summary>
    [CName("next")] public uint Next;
}

/// <summary>struct vfio_group_status: VFIO_GROUP_GET_STATUS.</summary>
[CName("vfio_group_status")]
[StructLayout(LayoutKind.Sequential)]
public struct VfioGroupStatus
{
    /// <summary>Size of the user buffer.</summary>
    [CName("argsz")] public uint Argsz;

    /// <summary>VFIO_GROUP_FLAGS_*.</summary>
    [CName("flags")] public uint Flags;
}
