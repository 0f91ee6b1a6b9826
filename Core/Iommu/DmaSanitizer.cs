using KernelModel.Mm;

namespace KernelModel.Iommu;

/// <summary>A DMA that reached memory its mapping no longer had a right to.</summary>
public sealed record DmaUseAfterFree(string Device, Iova Iova, PhysAddr Phys, bool Write, string Reason)
{
    /// <inheritdoc />
    public override string ToString() =>
        $"BUG: DMA use-after-free: {(Write ? "write" : "read")} by {Device} at {Iova} -> phys 0x{Phys.Value:x}: {Reason}";
}

/// <summary>
/// The DMA sanitizer: checks every device DMA after IOMMU translation. A RAM page must still be
/// allocated and pinned (an IOMMU mapping is only safe while its pin lasts); an MMIO target must
/// still be held (a vfio device's BAR stops being held when its user releases the device).
/// Findings are reports, not failures: the DMA still happens, as it would on hardware.
/// </summary>
public sealed class DmaSanitizer
{
    private readonly List<DmaUseAfterFree> _reports = [];
    private readonly Lock _lock = new();

    /// <summary>Every report so far.</summary>
    public IReadOnlyList<DmaUseAfterFree> Reports
    {
        get
        {
            lock (_lock)
            {
                return [.. _reports];
            }
        }
    }

    /// <summary>Forgets the reports (between scenario steps).</summary>
    public void Clear()
    {
        lock (_lock)
        {
            _reports.Clear();
        }
    }

    internal void CheckRam(PhysicalMemory phys, string device, Iova iova, ulong addr, bool write)
    {
        var pfn = new Pfn(addr >> phys.Geometry.PageShift);
        string? reason = null;
        if (!phys.TryGetFolio(pfn, out var folio))
        {
            reason = $"{pfn} is free";
        }
        else if (folio.PinCount == 0)
        {
            reason = $"{pfn} is not pinned ({folio})";
        }

        if (reason is not null)
        {
            Report(new DmaUseAfterFree(device, iova, new PhysAddr(addr), write, reason));
        }
    }

    internal void CheckMmio(MmioRegion region, string device, Iova iova, ulong addr, bool write)
    {
        if (!region.DmaHeld)
        {
            Report(new DmaUseAfterFree(device, iova, new PhysAddr(addr), write, $"{region.Name} of {region.Owner} is no longer held by the mapping's owner"));
        }
    }

    private void Report(DmaUseAfterFree report)
    {
        lock (_lock)
        {
            _reports.Add(report);
        }
    }
}
