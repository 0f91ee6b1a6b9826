using System.Runtime.InteropServices;

namespace KernelModel.Uapi;

/// <summary>struct vfio_region_sparse_mmap_area: one mmap-able area of a region.</summary>
[CName("vfio_region_sparse_mmap_area")]
[StructLayout(LayoutKind.Sequential)]
public struct VfioRegionSparseMmapArea
{
    /// <summary>Offset of the area within the region.</summary>
    [CName("offset")] public ulong Offset;

    /// <summary>Size of the area.</summary>
    [CName("size")] public ulong Size;
}

/// <summary>
/// struct vfio_region_info_cap_sparse_mmap (VFIO_REGION_INFO_CAP_SPARSE_MMAP). The C struct ends with
/// <c>struct vfio_region_sparse_mmap_area areas[]</c> at offset 16 (= sizeof).
/// </summary>
[CName("vfio_region_info_cap_sparse_mmap")]
[FlexibleArray("areas", typeof(VfioRegionSparseMmapArea), 16)]
[StructLayout(LayoutKind.Sequential)]
public struct VfioRegionInfoCapSparseMmap
{
    /// <summary>Capability header.</summary>
    [CName("header")] public VfioInfoCapHeader Header;

    /// <summary>Number of areas that follow.</summary>
    [CName("nr_areas")] public uint NrAreas;

    /// <summary>Reserved.</summary>
    [CName("reserved")] public uint Reserved;
}

/// <summary>struct vfio_region_info_cap_type (VFIO_REGION_INFO_CAP_TYPE).</summary>
[CName("vfio_region_info_cap_type")]
[StructLayout(LayoutKind.Sequential)]
public struct VfioRegionInfoCapType
{
    /// <summary>Capability header.</summary>
    [CName("header")] public VfioInfoCapHeader Header;

    /// <summary>Region type, global per bus driver (VFIO_REGION_TYPE_*).</summary>
    [CName("type")] public uint Type;

    /// <summary>Type-specific subtype (VFIO_REGION_SUBTYPE_*).</summary>
    [CName("subtype")] public uint Subtype;
}

/// <summary>struct vfio_region_info_cap_nvlink2_ssatgt (VFIO_REGION_INFO_CAP_NVLINK2_SSATGT).</summary>
[CName("vfio_region_info_cap_nvlink2_ssatgt")]
[StructLayout(LayoutKind.Sequential)]
public struct VfioRegionInfoCapNvlink2Ssatgt
{
    /// <summary>Capability header.</summary>
    [CName("header")] public VfioInfoCapHeader Header;

    /// <summary>Target address of the GPU RAM in the NVLink address space.</summary>
    [CName("tgt")] public ulong Tgt;
}

/// <summary>struct vfio_region_info_cap_nvlink2_lnkspd (VFIO_REGION_INFO_CAP_NVLINK2_LNKSPD).</summary>
[CName("vfio_region_info_cap_nvlink2_lnkspd")]
[StructLayout(LayoutKind.Sequential)]
public struct VfioRegionInfoCapNvlink2Lnkspd
{
    /// <summary>Capability header.</summary>
    [CName("header")] public VfioInfoCapHeader Header;

    /// <summary>NVLink link speed.</summary>
    [CName("link_speed")] public uint LinkSpeed;

    /// <summary>Padding (C <c>__pad</c>).</summary>
    [CName("__pad")] public uint Pad;
}

/// <summary>struct vfio_iova_range: one usable IOVA range, inclusive of end.</summary>
[CName("vfio_iova_range")]
[StructLayout(LayoutKind.Sequential)]
public struct VfioIovaRange
{
    /// <summary>First IOVA.</summary>
    [CName("start")] public ulong Start;

    /// <summary>Last IOVA (inclusive).</summary>
    [CName("end")] public ulong End;
}

/// <summary>
/// struct vfio_iommu_type1_info_cap_iova_range (VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE). The C struct ends with
/// <c>struct vfio_iova_range iova_ranges[]</c> at offset 16 (= sizeof).
/// </summary>
[CName("vfio_iommu_type1_info_cap_iova_range")]
[FlexibleArray("iova_ranges", typeof(VfioIovaRange), 16)]
[StructLayout(LayoutKind.Sequential)]
public struct VfioIommuType1InfoCapIovaRange
{
    /// <summary>Capability header.</summary>
    [CName("header")] public VfioInfoCapHeader Header;

    /// <summary>Number of ranges that follow.</summary>
    [CName("nr_iovas")] public uint NrIovas;

    /// <summary>Reserved.</summary>
    [CName("reserved")] public uint Reserved;
}

/// <summary>struct vfio_iommu_type1_info_cap_migration (VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION).</summary>
[CName("vfio_iommu_type1_info_cap_migration")]
[StructLayout(LayoutKind.Sequential)]
public struct VfioIommuType1InfoCapMigration
{
    /// <summary>Capability header.</summary>
    [CName("header")] public VfioInfoCapHeader Header;

    /// <summary>Flags (none defined).</summary>
    [CName("flags")] public uint Flags;

    /// <summary>Page sizes supported for dirty tracking.</summary>
    [CName("pgsize_bitmap")] public ulong PgsizeBitmap;

    /// <summary>Largest dirty bitmap the backend returns, in bytes.</summary>
    [CName("max_dirty_bitmap_size")] public ulong MaxDirtyBitmapSize;
}

/// <summary>struct vfio_iommu_type1_info_dma_avail (VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL).</summary>
[CName("vfio_iommu_type1_info_dma_avail")]
[StructLayout(LayoutKind.Sequential)]
public struct VfioIommuType1InfoDmaAvail
{
    /// <summary>Capability header.</summary>
    [CName("header")] public VfioInfoCapHeader Header;

    /// <summary>Number of DMA mappings still allowed.</summary>
    [CName("avail")] public uint Avail;
}
