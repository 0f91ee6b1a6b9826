namespace KernelModel.Mm;

/// <summary>A RAM range of the physical map.</summary>
public readonly record struct RamRange(PhysAddr Start, ulong Size)
{
    /// <summary>One past the last byte.</summary>
    public ulong End => Start.Value + Size;
}

/// <summary>
/// The physical address space: RAM ranges with a buddy allocator of folios, MMIO ranges, and the
/// contents of RAM. Everything is sparse: page metadata exists per allocated folio (indexed by
/// section on first use) and page contents exist once written, so a machine with 1 TiB of RAM costs
/// almost nothing until it is used.
/// </summary>
public sealed class PhysicalMemory
{
    // A memory section, as SECTION_SIZE_BITS: the unit in which folio records are indexed.
    private const int SectionPagesShift = 15;

    private readonly RamRange[] _ram;
    private readonly List<MmioRegion> _mmio = [];
    private readonly Folio?[]?[] _sections;
    private readonly HashSet<ulong>[] _freeSets;
    private readonly Stack<ulong>[] _freeStacks;
    private readonly SparseStore _contents;
    private readonly Lock _lock = new();
    private ulong _generation;

    /// <summary>Builds the physical map. RAM ranges must be page aligned and must not overlap.</summary>
    public PhysicalMemory(PageGeometry geometry, IEnumerable<RamRange> ram)
    {
        Geometry = geometry;
        _ram = [.. ram.OrderBy(r => r.Start.Value)];
        var maxOrder = geometry.MaxOrder;
        _freeSets = new HashSet<ulong>[maxOrder + 1];
        _freeStacks = new Stack<ulong>[maxOrder + 1];
        for (var o = 0; o <= maxOrder; o++)
        {
            _freeSets[o] = [];
            _freeStacks[o] = new Stack<ulong>();
        }

        var endPfn = _ram.Length == 0 ? 0 : _ram[^1].End >> geometry.PageShift;
        _sections = new Folio?[]?[(endPfn >> SectionPagesShift) + 1];
        _contents = new SparseStore((int)geometry.PageSize);

        // Seed the free lists with the largest aligned blocks, highest address first so that the
        // stacks hand out low addresses first.
        var blocks = new List<(ulong Pfn, int Order)>();
        foreach (var range in _ram)
        {
            var pfn = range.Start.Value >> geometry.PageShift;
            var end = range.End >> geometry.PageShift;
            while (pfn < end)
            {
                var order = maxOrder;
                while (order > 0 && ((pfn & ((1UL << order) - 1)) != 0 || pfn + (1UL << order) > end))
                {
                    order--;
                }

                blocks.Add((pfn, order));
                pfn += 1UL << order;
            }

            TotalPages += (range.End - range.Start.Value) >> geometry.PageShift;
        }

        for (var i = blocks.Count - 1; i >= 0; i--)
        {
            PushFree(blocks[i].Pfn, blocks[i].Order);
        }

        FreePages = TotalPages;
    }

    /// <summary>The machine's paging geometry.</summary>
    public PageGeometry Geometry { get; }

    /// <summary>The RAM ranges, by address.</summary>
    public IReadOnlyList<RamRange> Ram => _ram;

    /// <summary>The MMIO ranges, by address.</summary>
    public IReadOnlyList<MmioRegion> Mmio => _mmio;

    /// <summary>Pages of RAM.</summary>
    public ulong TotalPages { get; }

    /// <summary>Pages of RAM on the free lists.</summary>
    public ulong FreePages { get; private set; }

    /// <summary>Folio records that are live.</summary>
    public long LiveFolios { get; private set; }

    /// <summary>How many section indexes have been allocated (sparse metadata, for tests).</summary>
    public int PopulatedSections => _sections.Count(s => s is not null);

    /// <summary>Adds an MMIO range. EEXIST when it overlaps RAM or another MMIO range; EINVAL when misaligned.</summary>
    public Kernel.KResult AddMmio(MmioRegion region)
    {
        if (region.Size == 0 || !Geometry.IsPageAligned(region.Start.Value) || !Geometry.IsPageAligned(region.Size)
            || region.Start.Value > ulong.MaxValue - region.Size)
        {
            return Errno.EINVAL;
        }

        if (IsRam(region.Start.Value, region.Size) || _ram.Any(r => Overlaps(r.Start.Value, r.Size, region.Start.Value, region.Size))
            || _mmio.Any(m => Overlaps(m.Start.Value, m.Size, region.Start.Value, region.Size)))
        {
            return Errno.EEXIST;
        }

        var at = _mmio.FindIndex(m => m.Start.Value > region.Start.Value);
        _mmio.Insert(at < 0 ? _mmio.Count : at, region);
        return Kernel.KResult.Ok;
    }

    private static bool Overlaps(ulong a, ulong aLen, ulong b, ulong bLen) => a < b + bLen && b < a + aLen;

    /// <summary>True when every byte of the range is RAM (pfn_valid for the whole range).</summary>
    public bool IsRam(ulong phys, ulong length = 1)
    {
        foreach (var r in _ram)
        {
            if (phys >= r.Start.Value && phys < r.End)
            {
                return length <= r.End - phys;
            }
        }

        return false;
    }

    /// <summary>The MMIO region holding <paramref name="phys"/>, if any.</summary>
    public bool TryGetMmio(ulong phys, out MmioRegion region)
    {
        foreach (var m in _mmio)
        {
            if (m.Contains(phys))
            {
                region = m;
                return true;
            }
        }

        region = null!;
        return false;
    }

    /// <summary>
    /// pfn_valid() plus "not reserved": true only for RAM pfns. MMIO and holes are invalid or
    /// reserved, which is what the IOMMU backends test before treating a pfn as pinnable.
    /// </summary>
    public bool IsValidPfn(Pfn pfn) => IsRam(pfn.Value << Geometry.PageShift);

    /// <summary>Allocates a folio of 2^<paramref name="order"/> pages, or null when no block is free.</summary>
    internal Folio? AllocFolio(int order, FolioFlags flags)
    {
        if (order < 0 || order > Geometry.MaxOrder)
        {
            return null;
        }

        lock (_lock)
        {
            var o = order;
            while (o <= Geometry.MaxOrder && _freeSets[o].Count == 0)
            {
                o++;
            }

            if (o > Geometry.MaxOrder)
            {
                return null;
            }

            var pfn = PopFree(o);
            // Split down: keep the low half, free the high halves (like expand() in the buddy allocator).
            while (o > order)
            {
                o--;
                PushFree(pfn + (1UL << o), o);
            }

            FreePages -= 1UL << order;
            var folio = new Folio(new Pfn(pfn), order, flags, ++_generation);
            SetFolio(pfn, folio);
            LiveFolios++;
            return folio;
        }
    }

    /// <summary>Returns a folio whose last reference is gone to the allocator, merging buddies.</summary>
    internal void FreeFolio(Folio folio)
    {
        lock (_lock)
        {
            if (folio.IsFree)
            {
                throw new InvalidOperationException($"double free of {folio}");
            }

            folio.IsFree = true;
            SetFolio(folio.Head.Value, null);
            LiveFolios--;
            FreePages += folio.NrPages;
            var pfn = folio.Head.Value;
            var order = folio.Order;
            while (order < Geometry.MaxOrder)
            {
                var buddy = pfn ^ (1UL << order);
                if (!_freeSets[order].Remove(buddy))
                {
                    break;
                }

                pfn = Math.Min(pfn, buddy);
                order++;
            }

            PushFree(pfn, order);
        }
    }

    /// <summary>The live folio whose head is exactly <paramref name="pfn"/>, or null: one array load, for walkers of base pages.</summary>
    internal Folio? FolioWithHead(ulong pfn)
    {
        var section = pfn >> SectionPagesShift;
        return section < (ulong)_sections.Length && _sections[section] is { } records
            ? records[pfn & ((1UL << SectionPagesShift) - 1)]
            : null;
    }

    /// <summary>The live folio that holds <paramref name="pfn"/>, if any.</summary>
    public bool TryGetFolio(Pfn pfn, out Folio folio)
    {
        foreach (var order in FolioOrders)
        {
            var head = pfn.Value & ~((1UL << order) - 1);
            var section = head >> SectionPagesShift;
            if (section < (ulong)_sections.Length && _sections[section] is { } records
                && records[head & ((1UL << SectionPagesShift) - 1)] is { } f && f.Order >= order && f.Contains(pfn))
            {
                folio = f;
                return true;
            }
        }

        folio = null!;
        return false;
    }

    private int[] FolioOrders => field ??= [.. new[] { 0, Geometry.PmdOrder, Geometry.PudOrder }.Distinct().Where(o => o >= 0).Order()];

    private void SetFolio(ulong head, Folio? folio)
    {
        var section = head >> SectionPagesShift;
        var records = _sections[section] ??= new Folio?[1 << SectionPagesShift];
        records[head & ((1UL << SectionPagesShift) - 1)] = folio;
    }

    private void PushFree(ulong pfn, int order)
    {
        _freeSets[order].Add(pfn);
        _freeStacks[order].Push(pfn);
    }

    private ulong PopFree(int order)
    {
        // The stack may hold blocks that were merged away since; the set is the truth.
        while (true)
        {
            var pfn = _freeStacks[order].Pop();
            if (_freeSets[order].Remove(pfn))
            {
                return pfn;
            }
        }
    }

    /// <summary>Zeroes the contents of a folio (clear_page on allocation for user space).</summary>
    internal void ZeroFolio(Folio folio) =>
        _contents.Clear(folio.Head.Value << Geometry.PageShift, folio.NrPages << Geometry.PageShift);

    /// <summary>
    /// Reads physical memory: RAM contents, an MMIO region's store, or all-ones for a hole
    /// (a master abort).
    /// </summary>
    public void Read(PhysAddr phys, Span<byte> buffer)
    {
        var addr = phys.Value;
        while (!buffer.IsEmpty)
        {
            var n = ChunkAt(addr, buffer.Length, out var ram, out var mmio);
            if (ram)
            {
                lock (_contents)
                {
                    _contents.Read(addr, buffer[..n]);
                }
            }
            else if (mmio is not null)
            {
                mmio.Read(addr - mmio.Start.Value, buffer[..n]);
            }
            else
            {
                buffer[..n].Fill(0xff);
            }

            buffer = buffer[n..];
            addr += (ulong)n;
        }
    }

    /// <summary>Writes physical memory; writes to a hole are dropped.</summary>
    public void Write(PhysAddr phys, ReadOnlySpan<byte> buffer)
    {
        var addr = phys.Value;
        while (!buffer.IsEmpty)
        {
            var n = ChunkAt(addr, buffer.Length, out var ram, out var mmio);
            if (ram)
            {
                lock (_contents)
                {
                    _contents.Write(addr, buffer[..n]);
                }
            }
            else
            {
                mmio?.Write(addr - mmio.Start.Value, buffer[..n]);
            }

            buffer = buffer[n..];
            addr += (ulong)n;
        }
    }

    // The bytes from addr to the end of its page (at most max), and what backs that page.
    private int ChunkAt(ulong addr, int max, out bool ram, out MmioRegion? mmio)
    {
        var pageLeft = Geometry.PageSize - (addr & (Geometry.PageSize - 1));
        var n = (int)Math.Min((ulong)max, pageLeft);
        ram = IsRam(addr);
        mmio = null;
        if (!ram && TryGetMmio(addr, out var region))
        {
            mmio = region;
        }

        return n;
    }
}
