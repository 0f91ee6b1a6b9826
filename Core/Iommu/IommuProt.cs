namespace KernelModel.Iommu;

/// <summary>
/// Protection bits of an IOMMU mapping, with the values of the IOMMU_* flags in include/linux/iommu.h,
/// so a caller may cast the integers it knows.
/// </summary>
[Flags]
public enum IommuProt
{
    /// <summary>No access.</summary>
    None = 0,

    /// <summary>IOMMU_READ: the device may read the mapped memory.</summary>
    Read = 0x1,

    /// <summary>IOMMU_WRITE: the device may write the mapped memory.</summary>
    Write = 0x2,

    /// <summary>IOMMU_CACHE: DMA is cache coherent.</summary>
    Cache = 0x4,

    /// <summary>IOMMU_NOEXEC: the device may not fetch instructions from this mapping.</summary>
    NoExec = 0x8,

    /// <summary>IOMMU_MMIO: the target is MMIO (device memory), not RAM.</summary>
    Mmio = 0x10,

    /// <summary>IOMMU_PRIV: privileged (supervisor) accesses only.</summary>
    Priv = 0x20,
}
