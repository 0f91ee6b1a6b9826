using System.Runtime.InteropServices;

namespace KernelModel.Uapi;

/// <summary>struct vfio_iommu_type1_info: VFIO_IOMMU_GET_INFO on a type1 container.</summary>
[CName("vfio_iommu_type1_info")]
[StructLayout(LayoutKind.Sequential)]
public struct VfioIommuType1Info
{
    /// <summary>Size of the user buffer, including any capability chain.</summary>
    [CName("argsz")] public uint Argsz;

    /// <summary>VFIO_IOMMU_INFO_*.</summary>
    [CName("flags")] public uint Flags;

    /// <summary>Bitmap of supported IOMMU page sizes.</summary>
    [CName("iova_pgsizes")] public ulong IovaPgsizes;

    /// <summary>Offset within the info of the first capability (VFIO_IOMMU_INFO_CAPS).</summary>
    [CName("cap_offset")] public uint CapOffset;
}

/// <summary>struct vfio_iommu_type1_dma_map: VFIO_IOMMU_MAP_DMA.</summary>
[CName("vfio_iommu_type1_dma_map")]
[StructLayout(LayoutKind.Sequential)]
public struct VfioIommuType1DmaMap
{
    /// <summary>Size of the user buffer.</summary>
    [CName("argsz")] public uint Argsz;

    /// <summary>VFIO_DMA_MAP_FLAG_*.</summary>
    [CName("flags")] public uint Flags;

    /// <summary>Process virtual address.</summary>
    [CName("vaddr")] public ulong Vaddr;

    /// <summary>IO virtual address.</summary>
    [CName("iova")] public ulong Iova;

    /// <summary>Size of the mapping in bytes.</summary>
    [CName("size")] public ulong Size;
}

/// <summary>
/// struct vfio_bitmap: a user dirty bitmap. <c>data</c> is a C pointer (<c>__u64 *</c>); it is 8 bytes on the LP64
/// machines this model lays out, so it is a <see cref="ulong"/> user address here.
/// </summary>
[CName("vfio_bitmap")]
[StructLayout(LayoutKind.Sequential)]
public struct VfioBitmap
{
    /// <summary>Page size one bit stands for, in bytes.</summary>
    [CName("pgsize")] public ulong Pgsize;

    /// <summary>Bitmap size in bytes.</summary>
    [CName("size")] public ulong Size;

    /// <summary>User address of the bitmap, one bit per page.</summary>
    [CName("data")] public ulong Data;
}

/// <summary>
/// struct vfio_iommu_type1_dma_unmap: VFIO_IOMMU_UNMAP_DMA. The C struct ends with <c>__u8 data[]</c> at offset 24
/// (= sizeof), which holds a struct vfio_bitmap with VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP.
/// </summary>
[CName("vfio_iommu_type1_dma_unmap")]
[FlexibleArray("data", typeof(byte), 24)]
[StructLayout(LayoutKind.Sequential)]
public struct VfioIommuType1DmaUnmap
{
    /// <summary>Size of the user buffer, including data[].</summary>
    [CName("argsz")] public uint Argsz;

    /// <summary>VFIO_DMA_UNMAP_FLAG_*.</summary>
    [CName("flags")] public uint Flags;

    /// <summary>IO virtual address.</summary>
    [CName("iova")] public ulong Iova;

    /// <summary>Size in bytes (in); bytes unmapped (out).</summary>
    [CName("size")] public ulong Size;
}

/// <summary>
/// struct vfio_iommu_type1_dirty_bitmap: VFIO_IOMMU_DIRTY_PAGES. The C struct ends with <c>__u8 data[]</c> at
/// offset 8 (= sizeof), which holds a struct vfio_iommu_type1_dirty_bitmap_get with GET_BITMAP.
/// </summary>
[CName("vfio_iommu_type1_dirty_bitmap")]
[FlexibleArray("data", typeof(byte), 8)]
[StructLayout(LayoutKind.Sequential)]
public struct VfioIommuType1DirtyBitmap
{
    /// <summary>Size of the user buffer, including data[].</summary>
    [CName("argsz")] public uint Argsz;

    /// <summary>One of VFIO_IOMMU_DIRTY_PAGES_FLAG_*.</summary>
    [CName("flags")] public uint Flags;
}

/// <summary>struct vfio_iommu_type1_dirty_bitmap_get: the data of VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP.</summary>
[CName("vfio_iommu_type1_dirty_bitmap_get")]
[StructLayout(LayoutKind.Sequential)]
public struct VfioIommuType1DirtyBitmapGet
{
    /// <summary>IO virtual address.</summary>
    [CName("iova")] public ulong Iova;

    /// <summary>Size of the IOVA range.</summary>
    [CName("size")] public ulong Size;

    /// <summary>The user bitmap to fill.</summary>
    [CName("bitmap")] public VfioBitmap Bitmap;
}
