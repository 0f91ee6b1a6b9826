using KernelModel.Kernel;
using KernelModel.Mm;
using KernelModel.Vfio;

namespace KernelModel.Tests.FakeBus;

/// <summary>
/// A fake bus's vfio device: one region (index 0, the device's first MMIO range), mmappable
/// through the device's address space. File offsets encode the region index the way vfio-pci
/// does (index &lt;&lt; 40), and vm_pgoff keeps that encoding, so <see cref="VmaToPfn"/> can compute
/// pfns from the region alone.
/// </summary>
public sealed class FakeVfioDevice : VfioDevice
{
    /// <summary>VFIO_PCI_OFFSET_SHIFT: the region index sits above bit 40 of a file offset.</summary>
    public const int OffsetShift = 40;

    private readonly bool _allowsPeerToPeer;

    internal FakeVfioDevice(Device device, bool allowsPeerToPeer)
        : base(device)
    {
        _allowsPeerToPeer = allowsPeerToPeer;
    }

    /// <inheritdoc />
    public override bool AllowsPeerToPeer => _allowsPeerToPeer;

    private MmioRegion Region => Device.Mmio[0];

    /// <summary>The region index and the page offset inside it that a VMA's vm_pgoff encodes.</summary>
    private static (ulong Index, ulong PgOff) Decode(Vma vma)
    {
        var indexShift = OffsetShift - vma.Mm.Geometry.PageShift;
        return (vma.PgOff >> indexShift, vma.PgOff & ((1UL << indexShift) - 1));
    }

    // Like vfio_pci_core_mmap(): shared only, inside the region, and vm_pgoff left as the region
    // encoding (the RFC's rule) rather than rewritten to the pfn.
    /// <inheritdoc />
    protected override KResult Mmap(Vma vma)
    {
        var (index, pgoff) = Decode(vma);
        if (index != 0 || (vma.Flags & VmFlags.Shared) == 0)
        {
            return Errno.EINVAL;
        }

        var shift = vma.Mm.Geometry.PageShift;
        var regionPages = (Region.Size + vma.Mm.Geometry.PageSize - 1) >> shift;
        var vmaPages = vma.Length >> shift;
        if (pgoff > regionPages || vmaPages > regionPages - pgoff)
        {
            return Errno.EINVAL;
        }

        vma.Flags |= VmFlags.Io | VmFlags.PfnMap | VmFlags.DontExpand | VmFlags.DontDump;
        vma.Operations = FakeVmOperations.Instance;
        vma.PrivateData = this;
        return KResult.Ok;
    }

    /// <inheritdoc />
    public override KResult<PfnRun> VmaToPfn(Vma vma, ulong offset, ulong length)
    {
        if (vma.File?.PrivateData != this || length == 0 || offset > vma.Length || length > vma.Length - offset)
        {
            return Errno.EINVAL;
        }

        var geometry = vma.Mm.Geometry;
        if (!geometry.IsPageAligned(offset) || !geometry.IsPageAligned(length))
        {
            return Errno.EINVAL;
        }

        var (index, pgoff) = Decode(vma);
        if (index != 0)
        {
            return Errno.EINVAL;
        }

        var first = new Pfn(Region.Start.Value >> geometry.PageShift) + pgoff + (offset >> geometry.PageShift);
        return new PfnRun(first, length >> geometry.PageShift);
    }

    /// <inheritdoc />
    protected override void CloseDevice() => NotifyRelease();

    /// <summary>The pfn a page of a VMA of this device maps.</summary>
    internal Pfn PfnAt(Vma vma, ulong pgoffInVma)
    {
        var (_, pgoff) = Decode(vma);
        return new Pfn(Region.Start.Value >> vma.Mm.Geometry.PageShift) + pgoff + pgoffInVma;
    }

    // Like vfio_pci_mmap_fault() before huge pfnmap: the first touch maps the whole VMA; pages a
    // partial zap left in place are kept.
    private sealed class FakeVmOperations : VmOperations
    {
        public static readonly FakeVmOperations Instance = new();

        public override VmFaultResult Fault(VmFault vmf)
        {
            var vma = vmf.Vma;
            if (vma.PrivateData is not FakeVfioDevice device)
            {
                return VmFaultResult.SigBus;
            }

            var pageSize = vma.Mm.Geometry.PageSize;
            ulong page = 0;
            for (var addr = vma.Start; addr < vma.End; addr += pageSize, page++)
            {
                var inserted = vma.InsertPfn(addr, device.PfnAt(vma, page));
                if (!inserted.IsOk && inserted.Error != Errno.EBUSY)
                {
                    return VmFaultResult.SigBus;
                }
            }

            return VmFaultResult.NoPage;
        }
    }
}
