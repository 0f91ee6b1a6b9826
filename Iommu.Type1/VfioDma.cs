using KernelModel.Kernel;
using KernelModel.Mm;
using KernelModel.Vfio;

namespace KernelModel.Iommu.Type1;

/// <summary>
/// One user DMA mapping (struct vfio_dma): [Iova, Iova + Size) of the IOVA space backed by
/// [Vaddr, Vaddr + Size) of the mapping process. <see cref="Size"/> grows as the map path pins and
/// maps, so on failure exactly the mapped part is torn down.
/// </summary>
/// <remarks>
/// Entries are recycled through the container's free list (<see cref="Reset"/>), so a steady state of
/// MAP_DMA/UNMAP_DMA allocates nothing; the kernel kzalloc()s one per map.
/// </remarks>
internal sealed class VfioDma
{
    public ulong Iova { get; private set; }

    public ulong Vaddr { get; set; }

    /// <summary>Bytes mapped so far (the full size once the map completed).</summary>
    public ulong Size { get; set; }

    public IommuProt Prot { get; private set; }

    /// <summary>The mm whose pages are pinned and whose locked_vm is charged (dma->mm).</summary>
    public MmStruct Mm { get; private set; } = null!;

    /// <summary>dma->iommu_mapped: the pages are pinned and mapped into the container's domains.</summary>
    public bool IommuMapped { get; set; }

    /// <summary>VFIO_DMA_UNMAP_FLAG_VADDR was applied: the vaddr is stale until MAP_DMA with FLAG_VADDR.</summary>
    public bool VaddrInvalid { get; set; }

    /// <summary>The vfio device whose memory this mapping targets, in strict MMIO mode (RFC 10/10's pfnmap_obj).</summary>
    public PfnmapBinding? Pfnmap { get; set; }

    /// <summary>Dirty bitmap while dirty tracking is on, one bit per smallest IOMMU page.</summary>
    public ulong[]? DirtyBitmap { get; set; }

    /// <summary>
    /// dma->pfn_list: pages pinned by emulated devices (PinPages), by IOVA. Null while empty, which
    /// is the usual case, so mappings without external pins carry no dictionary.
    /// </summary>
    public Dictionary<ulong, VfioPfn>? PfnList { get; private set; }

    /// <summary>True when emulated devices hold pins in this mapping (!RB_EMPTY_ROOT(&amp;dma->pfn_list)).</summary>
    public bool HasExternalPins => PfnList is { Count: > 0 };

    /// <summary>The last IOVA (inclusive); meaningful when Size is non-zero. Never overflows: map checked iova + size - 1.</summary>
    public ulong Last => Iova + (Size - 1);

    /// <summary>Sets the entry up for a new mapping, as vfio_dma_do_map() fills a fresh vfio_dma.</summary>
    public void Reset(ulong iova, ulong vaddr, IommuProt prot, MmStruct mm)
    {
        Iova = iova;
        Vaddr = vaddr;
        Prot = prot;
        Mm = mm;
        Size = 0;
        IommuMapped = false;
        VaddrInvalid = false;
        Pfnmap = null;
        DirtyBitmap = null;
        PfnList?.Clear();
    }

    /// <summary>vfio_find_vpfn().</summary>
    public VfioPfn? FindVpfn(ulong iova) => PfnList is { } list && list.TryGetValue(iova, out var vpfn) ? vpfn : null;

    /// <summary>vfio_add_to_pfn_list(): a new entry with one reference.</summary>
    public void AddVpfn(ulong iova, Pfn pfn) => (PfnList ??= [])[iova] = new VfioPfn(iova, pfn);

    /// <summary>vfio_remove_from_pfn_list().</summary>
    public void RemoveVpfn(VfioPfn vpfn) => PfnList!.Remove(vpfn.Iova);

    public override string ToString() => $"dma iova 0x{Iova:x} size 0x{Size:x} vaddr 0x{Vaddr:x}";
}

/// <summary>
/// A page pinned by an emulated device (struct vfio_pfn): the IOVA it was pinned at, the host pfn
/// and how many PinPages calls hold it. Only the first pin takes a page pin; the rest count here.
/// </summary>
internal sealed class VfioPfn(ulong iova, Pfn pfn)
{
    public ulong Iova { get; } = iova;

    public Pfn Pfn { get; } = pfn;

    public int RefCount { get; set; } = 1;
}

/// <summary>
/// The device a strict MMIO mapping holds (RFC 10/10's pfnmap_obj): a device reference and a
/// registration on the device's notifier chain. It outlives the mapping briefly: the notifier
/// cannot be unregistered from inside the chain, so dropping it is deferred to the system
/// workqueue, and <see cref="TryBeginRelease"/> makes sure that happens exactly once.
/// </summary>
internal sealed class PfnmapBinding
{
    private int _releasing;

    public PfnmapBinding(Type1Container owner, VfioDevice device)
    {
        Owner = owner;
        Device = device;
        Block = new NotifierBlock(OnDeviceEvent);
    }

    public Type1Container Owner { get; }

    /// <summary>The device, with the reference taken by the VMA lookup.</summary>
    public VfioDevice Device { get; }

    public NotifierBlock Block { get; }

    /// <summary>True for the first caller only: that caller schedules the unregistration and the put.</summary>
    public bool TryBeginRelease() => Interlocked.Exchange(ref _releasing, 1) == 0;

    private NotifyResult OnDeviceEvent(NotifierBlock block, ulong action, object? data)
    {
        if (action == (ulong)VfioDeviceEvent.Release)
        {
            Owner.OnPfnmapDeviceReleased(this);
        }

        return NotifyResult.Ok;
    }
}
