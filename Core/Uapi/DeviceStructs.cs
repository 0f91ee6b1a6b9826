using System.Runtime.InteropServices;

namespace KernelModel.Uapi;

/// <summary>struct vfio_device_info: VFIO_DEVICE_GET_INFO.</summary>
[CName("vfio_device_info")]
[StructLayout(LayoutKind.Sequential)]
public struct VfioDeviceInfo
{
    /// <summary>Size of the user buffer, including any capability chain.</summary>
    [CName("argsz")] public uint Argsz;

    /// <summary>VFIO_DEVICE_FLAGS_*.</summary>
    [CName("flags")] public uint Flags;

    /// <summary>Max region index + 1.</summary>
    [CName("num_regions")] public uint NumRegions;

    /// <summary>Max IRQ index + 1.</summary>
    [CName("num_irqs")] public uint NumIrqs;

    /// <summary>Offset within the info of the first capability (VFIO_DEVICE_FLAGS_CAPS).</summary>
    [CName("cap_offset")] public uint CapOffset;
}

/// <summary>struct vfio_region_info: VFIO_DEVICE_GET_REGION_INFO.</summary>
[CName("vfio_region_info")]
[StructLayout(LayoutKind.Sequential)]
public struct VfioRegionInfo
{
    /// <summary>Size of the user buffer, including any capability chain.</summary>
    [CName("argsz")] public uint Argsz;

    /// <summary>VFIO_REGION_INFO_FLAG_*.</summary>
    [CName("flags")] public uint Flags;

    /// <summary>Region index (in).</summary>
    [CName("index")] public uint Index;

    /// <summary>Offset within the info of the first capability (VFIO_REGION_INFO_FLAG_CAPS).</summary>
    [CName("cap_offset")] public uint CapOffset;

    /// <summary>Region size in bytes.</summary>
    [CName("size")] public ulong Size;

    /// <summary>Region offset from the start of the device fd (for pread/pwrite/mmap).</summary>
    [CName("offset")] public ulong Offset;
}

/// <summary>struct vfio_region_gfx_edid: the layout at the start of an EDID region (VFIO_REGION_SUBTYPE_GFX_EDID).</summary>
[CName("vfio_region_gfx_edid")]
[StructLayout(LayoutKind.Sequential)]
public struct VfioRegionGfxEdid
{
    /// <summary>Offset of the EDID blob within the region.</summary>
    [CName("edid_offset")] public uint EdidOffset;

    /// <summary>Maximum EDID size.</summary>
    [CName("edid_max_size")] public uint EdidMaxSize;

    /// <summary>Current EDID size.</summary>
    [CName("edid_size")] public uint EdidSize;

    /// <summary>Maximum horizontal resolution.</summary>
    [CName("max_xres")] public uint MaxXres;

    /// <summary>Maximum vertical resolution.</summary>
    [CName("max_yres")] public uint MaxYres;

    /// <summary>VFIO_DEVICE_GFX_LINK_STATE_*.</summary>
    [CName("link_state")] public uint LinkState;
}

/// <summary>struct vfio_device_migration_info: the header of a v1 (deprecated) migration region.</summary>
[CName("vfio_device_migration_info")]
[StructLayout(LayoutKind.Sequential)]
public struct VfioDeviceMigrationInfo
{
    /// <summary>VFIO_DEVICE_STATE_V1_* bits.</summary>
    [CName("device_state")] public uint DeviceState;

    /// <summary>Reserved.</summary>
    [CName("reserved")] public uint Reserved;

    /// <summary>Bytes of device state still to be read.</summary>
    [CName("pending_bytes")] public ulong PendingBytes;

    /// <summary>Offset of the data window within the region.</summary>
    [CName("data_offset")] public ulong DataOffset;

    /// <summary>Bytes available in the data window.</summary>
    [CName("data_size")] public ulong DataSize;
}

/// <summary>struct vfio_irq_info: VFIO_DEVICE_GET_IRQ_INFO.</summary>
[CName("vfio_irq_info")]
[StructLayout(LayoutKind.Sequential)]
public struct VfioIrqInfo
{
    /// <summary>Size of the user buffer.</summary>
    [CName("argsz")] public uint Argsz;

    /// <summary>VFIO_IRQ_INFO_*.</summary>
    [CName("flags")] public uint Flags;

    /// <summary>IRQ index (in).</summary>
    [CName("index")] public uint Index;

    /// <summary>Number of IRQs within this index.</summary>
    [CName("count")] public uint Count;
}

/// <summary>
/// struct vfio_irq_set: VFIO_DEVICE_SET_IRQS. The C struct ends with <c>__u8 data[]</c> at offset 20 (= sizeof):
/// count bools (u8) or eventfds (s32) as VFIO_IRQ_SET_DATA_* says.
/// </summary>
[CName("vfio_irq_set")]
[FlexibleArray("data", typeof(byte), 20)]
[StructLayout(LayoutKind.Sequential)]
public struct VfioIrqSet
{
    /// <summary>Size of the user buffer, including data[].</summary>
    [CName("argsz")] public uint Argsz;

    /// <summary>One VFIO_IRQ_SET_DATA_* and one VFIO_IRQ_SET_ACTION_*.</summary>
    [CName("flags")] public uint Flags;

    /// <summary>IRQ index.</summary>
    [CName("index")] public uint Index;

    /// <summary>First vector.</summary>
    [CName("start")] public uint Start;

    /// <summary>Number of vectors (0 with DATA_NONE and ACTION_TRIGGER disables the index).</summary>
    [CName("count")] public uint Count;
}

/// <summary>struct vfio_pci_dependent_device: one entry of vfio_pci_hot_reset_info.devices[].</summary>
[CName("vfio_pci_dependent_device")]
[StructLayout(LayoutKind.Sequential)]
public struct VfioPciDependentDevice
{
    /// <summary>IOMMU group of the device.</summary>
    [CName("group_id")] public uint GroupId;

    /// <summary>PCI segment.</summary>
    [CName("segment")] public ushort Segment;

    /// <summary>PCI bus number.</summary>
    [CName("bus")] public byte Bus;

    /// <summary>PCI device/function (PCI_SLOT/PCI_FUNC).</summary>
    [CName("devfn")] public byte Devfn;
}

/// <summary>
/// struct vfio_pci_hot_reset_info: VFIO_DEVICE_GET_PCI_HOT_RESET_INFO. The C struct ends with
/// <c>struct vfio_pci_dependent_device devices[]</c> at offset 12 (= sizeof).
/// </summary>
[CName("vfio_pci_hot_reset_info")]
[FlexibleArray("devices", typeof(VfioPciDependentDevice), 12)]
[StructLayout(LayoutKind.Sequential)]
public struct VfioPciHotResetInfo
{
    /// <summary>Size of the user buffer, including devices[].</summary>
    [CName("argsz")] public uint Argsz;

    /// <summary>Flags (none defined).</summary>
    [CName("flags")] public uint Flags;

    /// <summary>Number of affected devices (out; ENOSPC with the needed count if devices[] is too small).</summary>
    [CName("count")] public uint Count;
}

/// <summary>
/// struct vfio_pci_hot_reset: VFIO_DEVICE_PCI_HOT_RESET. The C struct ends with <c>__s32 group_fds[]</c>
/// at offset 12 (= sizeof).
/// </summary>
[CName("vfio_pci_hot_reset")]
[FlexibleArray("group_fds", typeof(int), 12)]
[StructLayout(LayoutKind.Sequential)]
public struct VfioPciHotReset
{
    /// <summary>Size of the user buffer, including group_fds[].</summary>
    [CName("argsz")] public uint Argsz;

    /// <summary>Flags (none defined).</summary>
    [CName("flags")] public uint Flags;

    /// <summary>Number of group fds.</summary>
    [CName("count")] public uint Count;
}

/// <summary>
/// struct vfio_device_gfx_plane_info: VFIO_DEVICE_QUERY_GFX_PLANE. The C struct ends with an anonymous union of
/// region_index and dmabuf_id; both are at offset 56 here.
/// </summary>
[CName("vfio_device_gfx_plane_info")]
[StructLayout(LayoutKind.Explicit, Size = 64)]
public struct VfioDeviceGfxPlaneInfo
{
    /// <summary>Size of the user buffer.</summary>
    [CName("argsz")][FieldOffset(0)] public uint Argsz;

    /// <summary>VFIO_GFX_PLANE_TYPE_*.</summary>
    [CName("flags")][FieldOffset(4)] public uint Flags;

    /// <summary>DRM_PLANE_TYPE_* (in).</summary>
    [CName("drm_plane_type")][FieldOffset(8)] public uint DrmPlaneType;

    /// <summary>DRM fourcc format of the plane.</summary>
    [CName("drm_format")][FieldOffset(12)] public uint DrmFormat;

    /// <summary>DRM format modifier (tiling).</summary>
    [CName("drm_format_mod")][FieldOffset(16)] public ulong DrmFormatMod;

    /// <summary>Width of the plane.</summary>
    [CName("width")][FieldOffset(24)] public uint Width;

    /// <summary>Height of the plane.</summary>
    [CName("height")][FieldOffset(28)] public uint Height;

    /// <summary>Stride of the plane.</summary>
    [CName("stride")][FieldOffset(32)] public uint Stride;

    /// <summary>Size of the plane in bytes, page aligned.</summary>
    [CName("size")][FieldOffset(36)] public uint Size;

    /// <summary>Horizontal position of a cursor plane.</summary>
    [CName("x_pos")][FieldOffset(40)] public uint XPos;

    /// <summary>Vertical position of a cursor plane.</summary>
    [CName("y_pos")][FieldOffset(44)] public uint YPos;

    /// <summary>Horizontal position of the cursor hotspot.</summary>
    [CName("x_hot")][FieldOffset(48)] public uint XHot;

    /// <summary>Vertical position of the cursor hotspot.</summary>
    [CName("y_hot")][FieldOffset(52)] public uint YHot;

    /// <summary>Region index of the plane (VFIO_GFX_PLANE_TYPE_REGION); shares storage with <see cref="DmabufId"/>.</summary>
    [CName("region_index")][FieldOffset(56)] public uint RegionIndex;

    /// <summary>dma-buf id of the plane (VFIO_GFX_PLANE_TYPE_DMABUF); shares storage with <see cref="RegionIndex"/>.</summary>
    [CName("dmabuf_id")][FieldOffset(56)] public uint DmabufId;
}

/// <summary>struct vfio_device_ioeventfd: VFIO_DEVICE_IOEVENTFD.</summary>
[CName("vfio_device_ioeventfd")]
[StructLayout(LayoutKind.Sequential)]
public struct VfioDeviceIoeventfd
{
    /// <summary>Size of the user buffer.</summary>
    [CName("argsz")] public uint Argsz;

    /// <summary>VFIO_DEVICE_IOEVENTFD_* (the write size).</summary>
    [CName("flags")] public uint Flags;

    /// <summary>Device fd offset of the write.</summary>
    [CName("offset")] public ulong Offset;

    /// <summary>Data to be written.</summary>
    [CName("data")] public ulong Data;

    /// <summary>eventfd, or -1 to de-assign.</summary>
    [CName("fd")] public int Fd;
}
