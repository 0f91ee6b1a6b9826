namespace KernelModel.Iommu.Type1;

/// <summary>
/// The type1 part of linux/vfio.h: ioctl numbers, flags and the byte offsets of the structs this
/// backend reads and writes. Values checked against /usr/include/linux/vfio.h.
/// </summary>
/// <remarks>
/// A shared Core/Uapi layer was being written concurrently and was not committed when this backend
/// landed, so the backend keeps its own copy of the few numbers it needs. Once Core/Uapi is in,
/// these should forward to it.
/// </remarks>
internal static class Type1Abi
{
    // Extensions (VFIO_CHECK_EXTENSION arguments).
    public const ulong TYPE1_IOMMU = 1;
    public const ulong TYPE1v2_IOMMU = 3;
    public const ulong DMA_CC_IOMMU = 4;
    public const ulong UNMAP_ALL = 9;
    public const ulong UPDATE_VADDR = 10;

    // ioctl numbers: _IO(';', 100 + n).
    private const uint Base = (';' << 8) | 100;
    public const uint CHECK_EXTENSION = Base + 1;
    public const uint IOMMU_GET_INFO = Base + 12;
    public const uint IOMMU_MAP_DMA = Base + 13;
    public const uint IOMMU_UNMAP_DMA = Base + 14;
    public const uint IOMMU_DIRTY_PAGES = Base + 17;

    // struct vfio_iommu_type1_info { u32 argsz; u32 flags; u64 iova_pgsizes; u32 cap_offset; } — 24 bytes with padding.
    public const int InfoFlagsOffset = 4;
    public const int InfoPgsizesOffset = 8;
    public const int InfoCapOffsetOffset = 16;
    public const int InfoMinSize = 16;   // offsetofend(iova_pgsizes)
    public const int InfoSize = 24;      // sizeof(struct vfio_iommu_type1_info)
    public const uint INFO_PGSIZES = 1 << 0;
    public const uint INFO_CAPS = 1 << 1;

    // Capability ids and layouts (struct vfio_info_cap_header { u16 id; u16 version; u32 next; }).
    public const ushort CAP_IOVA_RANGE = 1;   // header, u32 nr_iovas, u32 reserved, {u64 start; u64 end;}[]
    public const ushort CAP_MIGRATION = 2;    // header, u32 flags, (pad), u64 pgsize_bitmap, u64 max_dirty_bitmap_size: 32 bytes
    public const ushort CAP_DMA_AVAIL = 3;    // header, u32 avail: 12 bytes, padded to 16
    public const int CapHeaderSize = 8;

    // DIRTY_BITMAP_SIZE_MAX: one bit per page for INT_MAX pages, in longs.
    public const ulong DirtyBitmapSizeMax = ((int.MaxValue + 63UL) / 64) * 8;

    // struct vfio_iommu_type1_dma_map { u32 argsz; u32 flags; u64 vaddr; u64 iova; u64 size; } — 32 bytes.
    public const int MapVaddrOffset = 8;
    public const int MapIovaOffset = 16;
    public const int MapSizeOffset = 24;
    public const int MapMinSize = 32;        // offsetofend(size)
    public const uint MAP_FLAG_READ = 1 << 0;
    public const uint MAP_FLAG_WRITE = 1 << 1;
    public const uint MAP_FLAG_VADDR = 1 << 2;

    // struct vfio_iommu_type1_dma_unmap { u32 argsz; u32 flags; u64 iova; u64 size; u8 data[]; } — 24 bytes.
    public const int UnmapIovaOffset = 8;
    public const int UnmapSizeOffset = 16;
    public const int UnmapMinSize = 24;      // offsetofend(size)
    public const uint UNMAP_FLAG_GET_DIRTY_BITMAP = 1 << 0;
    public const uint UNMAP_FLAG_ALL = 1 << 1;
    public const uint UNMAP_FLAG_VADDR = 1 << 2;
}
