using KernelModel.Kernel;
using KernelModel.Uapi;
using KernelModel.Vfio;

namespace KernelModel.Iommu.Type1;

/// <summary>
/// The type1 IOMMU backend (drivers/vfio/vfio_iommu_type1.c): pins user memory and maps it into the
/// IOMMU domains of every group in the container. With strict MMIO maps (the machine default) it
/// maps VM_PFNMAP memory only when it is an opted-in vfio device's, and drops those mappings when
/// the device is released. Emulated devices pin through <see cref="IVfioIommuEmulatedAccess"/>.
/// </summary>
[VfioIommuBackend(
    "vfio-iommu-type1",
    Extensions = new ulong[]
    {
        VfioUapi.VFIO_TYPE1_IOMMU, VfioUapi.VFIO_TYPE1v2_IOMMU, VfioUapi.VFIO_DMA_CC_IOMMU,
        VfioUapi.VFIO_UNMAP_ALL, VfioUapi.VFIO_UPDATE_VADDR,
    })]
public sealed class Type1Backend : IVfioIommuBackend
{
    /// <inheritdoc />
    /// <remarks>
    /// Like vfio_iommu_type1_check_extension() with no container: DMA_CC and UPDATE_VADDR need
    /// container state to answer, so they are 0 here, as the kernel answers before SET_IOMMU.
    /// </remarks>
    public long CheckExtension(ulong extension) => Type1Container.CheckExtension(null, extension);

    /// <inheritdoc />
    /// <remarks>Like vfio_iommu_type1_open(): v1 or v2 per-container state.</remarks>
    public KResult<IVfioIommuContainer> Open(VfioIommuContext context, ulong type) => type switch
    {
        VfioUapi.VFIO_TYPE1_IOMMU => KResult<IVfioIommuContainer>.Success(new Type1Container(context, v2: false)),
        VfioUapi.VFIO_TYPE1v2_IOMMU => KResult<IVfioIommuContainer>.Success(new Type1Container(context, v2: true)),
        _ => KResult<IVfioIommuContainer>.Fail(Errno.EINVAL),
    };
}
