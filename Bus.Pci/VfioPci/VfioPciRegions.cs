using KernelModel.Uapi;

namespace KernelModel.Pci.VfioPci;

/// <summary>
/// How vfio-pci lays its regions out in the device fd: region N starts at N &lt;&lt; 40
/// (VFIO_PCI_OFFSET_SHIFT, vfio_pci_core.h), and mmap's vm_pgoff carries the same encoding.
/// </summary>
public static class VfioPciRegions
{
    /// <summary>VFIO_PCI_OFFSET_SHIFT.</summary>
    public const int OffsetShift = 40;

    /// <summary>VFIO_PCI_OFFSET_MASK: the offset inside a region.</summary>
    public const ulong OffsetMask = (1UL << OffsetShift) - 1;

    /// <summary>The fixed regions: BAR0..5, ROM, CONFIG, VGA.</summary>
    public const int NumRegions = VfioUapi.VFIO_PCI_NUM_REGIONS;

    /// <summary>VFIO_PCI_INDEX_TO_OFFSET().</summary>
    public static ulong IndexToOffset(int index) => (ulong)index << OffsetShift;

    /// <summary>VFIO_PCI_OFFSET_TO_INDEX().</summary>
    public static ulong OffsetToIndex(ulong offset) => offset >> OffsetShift;
}
