using System.Numerics;
using KernelModel.Kernel;

namespace KernelModel.Iommu;

/// <summary>
/// An IOMMU domain: one I/O address space, backed by a multi-level radix I/O page table in the shape
/// of an <see cref="IoPageTableFormat"/>, with the page sizes of a page-size bitmap and an aperture.
/// </summary>
/// <remarks>
/// <para>
/// Table nodes are allocated lazily on the first map below them and are never freed: like real
/// IOMMU drivers, which rarely give page-table pages back, an emptied node stays linked in the
/// tree and is reused by the next map there. So a steady state of map/unmap in the same IOVA range
/// allocates nothing; memory is bounded by the largest footprint the domain ever had. A leaf IOPTE
/// may be written over an empty cached table; the table stays cached beneath it.
/// </para>
/// <para>
/// Thread safety: every operation, translations included, takes the domain's own lock. Callers
/// such as the type1 backend already serialise map/unmap under their own lock (iommu->lock), so
/// this lock is uncontended there; it only makes device DMA that translates concurrently with a
/// map/unmap see either the old or the new table, never a half-updated walk. Lock order: this
/// lock is innermost; nothing is called out to while it is held.
/// </para>
/// </remarks>
public sealed class IommuDomain
{
    // IOPTE encoding: the leaf's physical address (aligned to at least 4 KiB, see IoPageTableFormat)
    // with the IommuProt bits and a present bit in the low 12 bits. A zero entry is empty.
    private const ulong PtePresent = 0x40;
    private const ulong PteProtMask = 0x3F;
    private const ulong PteLowMask = 0xFFF;

    private readonly Lock _lock = new();
    private readonly TableNode _root;
    private readonly int _topLevel;
    private readonly int[] _levelShift;
    private readonly int[] _levelOfShift;

    // Nodes on the current walk, indexed by level; reused under the lock so walks allocate nothing.
    private readonly TableNode[] _path;
    private readonly ulong _minPageMask;

    private long _liveIoptes;
    private ulong _mappedBytes;
    private long _iopteWrites;
    private int _tableNodes;

    /// <summary>Creates a domain whose aperture is the format's whole IOVA space.</summary>
    /// <param name="format">The I/O page table format.</param>
    /// <param name="pageSizeBitmap">Supported page sizes (bit n set = 2^n bytes); must be a non-empty subset of the format's leaf sizes.</param>
    /// <exception cref="ArgumentException">The bitmap is empty or holds a size the format cannot.</exception>
    public IommuDomain(IoPageTableFormat format, ulong pageSizeBitmap)
        : this(format, pageSizeBitmap, new Iova(0), new Iova(format?.MaxIova ?? 0))
    {
    }

    /// <summary>Creates a domain.</summary>
    /// <param name="format">The I/O page table format.</param>
    /// <param name="pageSizeBitmap">Supported page sizes (bit n set = 2^n bytes); must be a non-empty subset of the format's leaf sizes.</param>
    /// <param name="apertureStart">First IOVA that may be mapped.</param>
    /// <param name="apertureEnd">Last IOVA that may be mapped (inclusive); at most <see cref="IoPageTableFormat.MaxIova"/>.</param>
    /// <exception cref="ArgumentException">The bitmap is empty or holds a size the format cannot, or the aperture is empty or leaves the format.</exception>
    public IommuDomain(IoPageTableFormat format, ulong pageSizeBitmap, Iova apertureStart, Iova apertureEnd)
    {
        ArgumentNullException.ThrowIfNull(format);
        if (pageSizeBitmap == 0 || (pageSizeBitmap & ~format.PageSizeBitmap) != 0)
        {
            throw new ArgumentException(
                $"page-size bitmap 0x{pageSizeBitmap:x} must be a non-empty subset of the format's 0x{format.PageSizeBitmap:x}",
                nameof(pageSizeBitmap));
        }

        if (apertureStart.Value > apertureEnd.Value || apertureEnd.Value > format.MaxIova)
        {
            throw new ArgumentException($"aperture [{apertureStart}, {apertureEnd}] is empty or beyond {format.InputAddressBits} bits", nameof(apertureEnd));
        }

        Format = format;
        PageSizeBitmap = pageSizeBitmap;
        ApertureStart = apertureStart;
        ApertureEnd = apertureEnd;
        _minPageMask = (1UL << BitOperations.TrailingZeroCount(pageSizeBitmap)) - 1;

        _topLevel = format.Levels - 1;
        _levelShift = new int[format.Levels];
        _levelOfShift = new int[64];
        Array.Fill(_levelOfShift, -1);
        for (int level = 0; level < format.Levels; level++)
        {
            _levelShift[level] = format.LevelShift(level);
            _levelOfShift[_levelShift[level]] = level;
        }

        _path = new TableNode[format.Levels];
        _root = NewNode(_topLevel, format.RootEntries);
    }

    /// <summary>The page table format.</summary>
    public IoPageTableFormat Format { get; }

    /// <summary>Supported page sizes (bit n set = 2^n bytes), as iommu_domain's pgsize_bitmap.</summary>
    public ulong PageSizeBitmap { get; }

    /// <summary>First IOVA that may be mapped.</summary>
    public Iova ApertureStart { get; }

    /// <summary>Last IOVA that may be mapped (inclusive).</summary>
    public Iova ApertureEnd { get; }

    /// <summary>Number of leaf IOPTEs currently present, at any level.</summary>
    public long LiveIoptes
    {
        get
        {
            lock (_lock)
            {
                return _liveIoptes;
            }
        }
    }

    /// <summary>Bytes currently mapped (the sum of the sizes of the present leaf IOPTEs).</summary>
    public ulong MappedBytes
    {
        get
        {
            lock (_lock)
            {
                return _mappedBytes;
            }
        }
    }

    /// <summary>Running count of leaf IOPTE writes since creation: every set and every clear, rollbacks included.</summary>
    public long IopteWrites
    {
        get
        {
            lock (_lock)
            {
                return _iopteWrites;
            }
        }
    }

    /// <summary>Table nodes allocated so far, the root included (they are kept, see the class remarks).</summary>
    internal int TableNodeCount
    {
        get
        {
            lock (_lock)
            {
                return _tableNodes;
            }
        }
    }

    /// <summary>
    /// Maps <paramref name="size"/> bytes at <paramref name="iova"/> to physical memory at
    /// <paramref name="paddr"/>, like iommu_map(): split into the largest pages the bitmap allows.
    /// </summary>
    /// <remarks>
    /// Page size per step, as iommu_pgsize() chooses it: the largest supported size that is no
    /// larger than what remains and to which both the current IOVA and physical address are
    /// aligned. So a physically contiguous, 2 MiB-aligned 2 MiB run becomes one 2 MiB IOPTE.
    /// Errors, checked in this order:
    /// <list type="bullet">
    /// <item><see cref="Errno.EINVAL"/>: <paramref name="size"/> is 0; iova, paddr or size is not a
    /// multiple of the smallest supported page; or <paramref name="prot"/> has bits outside <see cref="IommuProt"/>.</item>
    /// <item><see cref="Errno.ERANGE"/>: the IOVA range leaves the format's input width, or the physical
    /// range its output width (wrapping past 2^64 included), as io-pgtable-arm reports an address the
    /// table cannot express.</item>
    /// <item><see cref="Errno.EFAULT"/>: the IOVA range is not wholly inside the aperture.</item>
    /// <item><see cref="Errno.EEXIST"/>: some page of the range is already mapped (by a leaf at any
    /// level, or a lower table that still holds entries). Whatever this call mapped before
    /// finding it is unmapped again, so the domain is as it was.</item>
    /// </list>
    /// Prot is stored as given; whether a mapping without Read/Write is useful is the caller's business.
    /// </remarks>
    public KResult Map(Iova iova, PhysAddr paddr, ulong size, IommuProt prot)
    {
        ulong start = iova.Value;
        ulong pa = paddr.Value;
        if (size == 0 || ((start | pa | size) & _minPageMask) != 0 || ((int)prot & ~(int)PteProtMask) != 0)
        {
            return Errno.EINVAL;
        }

        ulong last = size - 1;
        if (start > Format.MaxIova || last > Format.MaxIova - start || pa > Format.MaxPhys || last > Format.MaxPhys - pa)
        {
            return Errno.ERANGE;
        }

        if (start < ApertureStart.Value || start + last > ApertureEnd.Value)
        {
            return Errno.EFAULT;
        }

        lock (_lock)
        {
            return MapLocked(start, pa, size, (ulong)prot | PtePresent);
        }
    }

    /// <summary>
    /// Unmaps from <paramref name="iova"/> on, like iommu_unmap(), and returns the bytes unmapped.
    /// </summary>
    /// <remarks>
    /// <para>Stops at the first page that is not mapped and returns what was unmapped up to there
    /// (0 when the first page is not mapped). Returns 0 when size is 0 or iova/size is not a
    /// multiple of the smallest supported page.</para>
    /// <para>A leaf IOPTE is never split: when the range starts inside, or only partly covers, a
    /// large leaf, the whole leaf is removed and its full size counted, as the Intel and AMD drivers
    /// do. The result can thus exceed <paramref name="size"/>; the type1 backend relies on this
    /// (it unmaps what it mapped and advances by the returned size). Every leaf that intersects
    /// [iova, iova + size) is removed, up to the first hole.</para>
    /// </remarks>
    public ulong Unmap(Iova iova, ulong size)
    {
        ulong start = iova.Value;
        if (size == 0 || ((start | size) & _minPageMask) != 0 || start > Format.MaxIova)
        {
            return 0;
        }

        // Nothing can be mapped past the input width, so clip there; then start + length cannot wrap.
        ulong length = Math.Min(size, Format.MaxIova - start + 1);
        lock (_lock)
        {
            return UnmapLocked(start, start + length);
        }
    }

    /// <summary>
    /// The physical address <paramref name="iova"/> translates to, offset within its leaf included,
    /// like iommu_iova_to_phys(). False when it is not mapped.
    /// </summary>
    public bool TryIovaToPhys(Iova iova, out PhysAddr phys)
    {
        bool found = TryTranslate(iova.Value, out ulong pa, out _, out _);
        phys = new PhysAddr(pa);
        return found;
    }

    /// <summary>
    /// The translation device DMA uses: the physical address of <paramref name="iova"/> (leaf address
    /// plus offset), the leaf's prot and the leaf's size. The bytes that stay physically contiguous
    /// from <paramref name="iova"/> in this leaf are <c>leafSize - (iova &amp; (leafSize - 1))</c>, so a
    /// caller walks a buffer leaf by leaf rather than page by page. False (and zeros) when not mapped.
    /// </summary>
    internal bool TryTranslate(ulong iova, out ulong phys, out IommuProt prot, out ulong leafSize)
    {
        if (iova <= Format.MaxIova)
        {
            lock (_lock)
            {
                TableNode node = _root;
                for (int level = _topLevel; ; level--)
                {
                    int shift = _levelShift[level];
                    int idx = (int)((iova >> shift) & (ulong)(node.Ptes.Length - 1));
                    ulong pte = node.Ptes[idx];
                    if ((pte & PtePresent) != 0)
                    {
                        leafSize = 1UL << shift;
                        phys = (pte & ~PteLowMask) | (iova & (leafSize - 1));
                        prot = (IommuProt)(pte & PteProtMask);
                        return true;
                    }

                    TableNode? child = level > 0 ? node.Children![idx] : null;
                    if (child is null || child.Leaves == 0)
                    {
                        break;
                    }

                    node = child;
                }
            }
        }

        phys = 0;
        prot = IommuProt.None;
        leafSize = 0;
        return false;
    }

    private KResult MapLocked(ulong start, ulong pa, ulong size, ulong pteBits)
    {
        ulong iova = start;
        ulong remaining = size;
        while (remaining != 0)
        {
            ulong pgsize = PickPageSize(iova, pa, remaining, out ulong count);
            int level = _levelOfShift[BitOperations.TrailingZeroCount(pgsize)];

            // Walk down to the level of this page size, creating tables on the way. A leaf on the
            // way covers part of the range already.
            TableNode node = _root;
            for (int l = _topLevel; l > level; l--)
            {
                int i = Index(node, iova, l);
                if ((node.Ptes[i] & PtePresent) != 0)
                {
                    return RollBack(start, iova);
                }

                _path[l] = node;
                node = node.Children![i] ??= NewNode(l - 1, Format.EntriesPerTable);
            }

            _path[level] = node;
            int idx = Index(node, iova, level);
            int n = (int)Math.Min(count, (ulong)(node.Ptes.Length - idx));
            Span<ulong> ptes = node.Ptes.AsSpan(idx, n);
            int written = 0;
            ulong leafPa = pa;
            if (level == 0)
            {
                for (; written < ptes.Length; written++)
                {
                    if (ptes[written] != 0)
                    {
                        break;
                    }

                    ptes[written] = leafPa | pteBits;
                    leafPa += pgsize;
                }
            }
            else
            {
                // A leaf may go over an empty cached table (which stays for reuse), not over one with entries.
                Span<TableNode?> children = node.Children.AsSpan(idx, n);
                for (; written < ptes.Length; written++)
                {
                    if (ptes[written] != 0 || children[written] is { Leaves: > 0 })
                    {
                        break;
                    }

                    ptes[written] = leafPa | pteBits;
                    leafPa += pgsize;
                }
            }

            ulong bytes = (ulong)written * pgsize;
            CountLeaves(level, written);
            _mappedBytes += bytes;
            _iopteWrites += written;
            if (written < n)
            {
                return RollBack(start, iova + bytes);
            }

            iova += bytes;
            pa = leafPa;
            remaining -= bytes;
        }

        return KResult.Ok;
    }

    // Like the error path of iommu_map(): what this call mapped is exactly [start, end), so
    // unmapping that range restores the table (tables created on the way stay cached).
    private Errno RollBack(ulong start, ulong end)
    {
        if (end > start)
        {
            UnmapLocked(start, end);
        }

        return Errno.EEXIST;
    }

    private ulong UnmapLocked(ulong start, ulong end)
    {
        ulong iova = start;
        ulong unmapped = 0;
        while (iova < end)
        {
            // Find the leaf holding iova; an empty entry or an emptied table is a hole.
            TableNode node = _root;
            int level = _topLevel;
            int idx;
            while (true)
            {
                idx = Index(node, iova, level);
                _path[level] = node;
                if ((node.Ptes[idx] & PtePresent) != 0)
                {
                    break;
                }

                TableNode? child = level > 0 ? node.Children![idx] : null;
                if (child is null || child.Leaves == 0)
                {
                    return unmapped;
                }

                node = child;
                level--;
            }

            // Clear this leaf and the present leaves after it in the same node that still
            // intersect [iova, end). The first leaf may start before iova: it goes whole.
            int shift = _levelShift[level];
            ulong pgsize = 1UL << shift;
            ulong leafStart = iova & ~(pgsize - 1);
            ulong wanted = ((end - leafStart - 1) >> shift) + 1;
            int n = (int)Math.Min(wanted, (ulong)(node.Ptes.Length - idx));
            Span<ulong> ptes = node.Ptes.AsSpan(idx, n);
            int cleared = 0;
            for (; cleared < ptes.Length; cleared++)
            {
                if ((ptes[cleared] & PtePresent) == 0)
                {
                    break;
                }

                ptes[cleared] = 0;
            }

            ulong bytes = (ulong)cleared * pgsize;
            CountLeaves(level, -cleared);
            _mappedBytes -= bytes;
            _iopteWrites += cleared;
            unmapped += bytes;
            iova = leafStart + bytes;
        }

        return unmapped;
    }

    // Keeps the leaf counts of the nodes on the walked path (_path[level.._topLevel]) and the
    // domain's total in step: once per batch of IOPTEs, not per IOPTE.
    private void CountLeaves(int level, int leafDelta)
    {
        for (int l = level; l <= _topLevel; l++)
        {
            _path[l].Leaves += leafDelta;
        }

        _liveIoptes += leafDelta;
    }

    // Like iommu_pgsize(): the largest supported page that fits the remaining length and the
    // alignment of both addresses, and how many of it to map before a larger page could start
    // (the point where iova and pa both reach that larger page's alignment).
    private ulong PickPageSize(ulong iova, ulong pa, ulong remaining, out ulong count)
    {
        ulong candidates = PageSizeBitmap & (ulong.MaxValue >> (63 - BitOperations.Log2(remaining)));
        ulong addrMerge = iova | pa;
        if (addrMerge != 0)
        {
            candidates &= ulong.MaxValue >> (63 - BitOperations.TrailingZeroCount(addrMerge));
        }

        // Never empty: all three are multiples of the smallest supported page (checked by Map).
        ulong pgsize = 1UL << BitOperations.Log2(candidates);
        count = remaining >> BitOperations.TrailingZeroCount(pgsize);

        ulong larger = PageSizeBitmap & ~(pgsize | (pgsize - 1));
        if (larger != 0)
        {
            ulong next = 1UL << BitOperations.TrailingZeroCount(larger);
            if (((iova ^ pa) & (next - 1)) == 0)
            {
                ulong untilNext = next - (iova & (next - 1));
                count = Math.Min(count, untilNext >> BitOperations.TrailingZeroCount(pgsize));
            }
        }

        return pgsize;
    }

    private int Index(TableNode node, ulong iova, int level) =>
        (int)((iova >> _levelShift[level]) & (ulong)(node.Ptes.Length - 1));

    private TableNode NewNode(int level, int entries)
    {
        _tableNodes++;
        return new TableNode(entries, hasChildren: level > 0);
    }

    /// <summary>One table of the radix tree. An entry is empty, a leaf IOPTE (in Ptes), or a table (in Children).</summary>
    private sealed class TableNode(int entries, bool hasChildren)
    {
        public readonly ulong[] Ptes = new ulong[entries];

        // Null at level 0. A child may stay here while empty (cached) or under a leaf that was
        // written over it; a present leaf in Ptes always wins.
        public readonly TableNode?[]? Children = hasChildren ? new TableNode?[entries] : null;

        // Leaf IOPTEs in this node's whole subtree: 0 means the subtree maps nothing.
        public long Leaves;
    }
}
