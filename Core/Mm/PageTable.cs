namespace KernelModel.Mm;

/// <summary>Bits of a CPU page-table entry.</summary>
[Flags]
internal enum PteFlags : byte
{
    None = 0,
    Present = 1,
    Write = 2,
    /// <summary>pte_special: a raw pfn with no struct page behind it (VM_PFNMAP).</summary>
    Special = 4,
    Dirty = 8,
    /// <summary>
    /// pte_protnone: kept for the kernel (the page stays mapped and allocated) but inaccessible to
    /// user space, as x86's _PAGE_PROTNONE for a PROT_NONE VMA.
    /// </summary>
    ProtNone = 16,
}

/// <summary>
/// A page-table entry. For RAM it names the folio whose reference the mapping holds, so walkers
/// (GUP, zap) never need a pfn-to-folio lookup.
/// </summary>
internal struct Pte
{
    public ulong Pfn;
    public Folio? Folio;
    public PteFlags Flags;

    public readonly bool Present => (Flags & PteFlags.Present) != 0;
    public readonly bool Writable => (Flags & PteFlags.Write) != 0;
    public readonly bool UserAccessible => (Flags & PteFlags.ProtNone) == 0;
}

/// <summary>
/// A process's CPU page table: a radix tree with one level per paging level (PTE, PMD, PUD, top).
/// Leaves may sit at the PMD and PUD levels (huge mappings). Tables are allocated on first use.
/// </summary>
internal sealed class PageTable
{
    private readonly int[] _shifts;   // level shifts, lowest first: PTE, PMD, PUD, top
    private readonly int[] _bits;     // index bits per level
    private readonly Node _root;
    private readonly int _topLevel;

    public PageTable(PageGeometry geometry)
    {
        var pud = geometry.PudShift != 0 ? geometry.PudShift : geometry.PmdShift + (geometry.PmdShift - geometry.PageShift);
        var top = pud + (geometry.PmdShift - geometry.PageShift);
        _shifts = [geometry.PageShift, geometry.PmdShift, pud, top];
        _bits = new int[4];
        for (var i = 0; i < 3; i++)
        {
            _bits[i] = _shifts[i + 1] - _shifts[i];
        }

        _bits[3] = Math.Max(1, geometry.VaBits - top);
        _topLevel = 3;
        _root = new Node(1 << _bits[3]);
        Geometry = geometry;
    }

    public PageGeometry Geometry { get; }

    /// <summary>Leaf entries currently present (any level).</summary>
    public long PresentEntries { get; private set; }

    /// <summary>The shift of a leaf at <paramref name="level"/> (0 = PTE, 1 = PMD, 2 = PUD).</summary>
    public int LevelShift(int level) => _shifts[level];

    private sealed class Node(int size)
    {
        public readonly Pte[] Entries = new Pte[size];
        public Node?[]? Children;

        // Present leaves in this node (not in its children). Empty tables are kept, as real page
        // tables mostly are, so a steady map/unmap cycle does not allocate.
        public int Used;
    }

    private int Index(ulong va, int level) => (int)((va >> _shifts[level]) & ((1UL << _bits[level]) - 1));

    /// <summary>Finds the leaf that maps <paramref name="va"/>; level tells its size.</summary>
    public bool TryLookup(ulong va, out Pte pte, out int level)
    {
        var node = _root;
        for (level = _topLevel; ; level--)
        {
            var i = Index(va, level);
            if (level <= 2 && node.Entries[i].Present)
            {
                pte = node.Entries[i];
                return true;
            }

            if (level == 0 || node.Children?[i] is not { } child)
            {
                pte = default;
                return false;
            }

            node = child;
        }
    }

    /// <summary>
    /// The base-page (PTE-level) table holding <paramref name="va"/> and the index of its entry,
    /// or null when there is none or a huge leaf above maps <paramref name="va"/>. Callers hold the
    /// page-table lock while they use the array.
    /// </summary>
    public Pte[]? PteTable(ulong va, out int index)
    {
        var node = _root;
        for (var level = _topLevel; level > 0; level--)
        {
            var i = Index(va, level);
            if ((level <= 2 && node.Entries[i].Present) || node.Children?[i] is not { } child)
            {
                index = 0;
                return null;
            }

            node = child;
        }

        index = Index(va, 0);
        return node.Entries;
    }

    /// <summary>True when nothing at all is mapped in the naturally aligned block of <paramref name="level"/> holding va.</summary>
    public bool IsBlockEmpty(ulong va, int level)
    {
        var node = _root;
        for (var l = _topLevel; l > level; l--)
        {
            var i = Index(va, l);
            if (l <= 2 && node.Entries[i].Present)
            {
                return false;
            }

            if (node.Children?[i] is not { } child)
            {
                return true;
            }

            node = child;
        }

        var idx = Index(va, level);
        return !node.Entries[idx].Present && (node.Children?[idx] is not { } c || IsEmpty(c));
    }

    private static bool IsEmpty(Node node)
    {
        if (node.Used != 0)
        {
            return false;
        }

        if (node.Children is { } children)
        {
            foreach (var child in children)
            {
                if (child is not null && !IsEmpty(child))
                {
                    return false;
                }
            }
        }

        return true;
    }

    /// <summary>Installs a leaf at <paramref name="level"/>. The slot must be empty.</summary>
    public void Set(ulong va, int level, Pte pte)
    {
        var node = Walk(va, level, create: true)!;
        var i = Index(va, level);
        if (node.Entries[i].Present)
        {
            throw new InvalidOperationException($"page table slot at 0x{va:x} level {level} already present");
        }

        pte.Flags |= PteFlags.Present;
        node.Entries[i] = pte;
        node.Used++;
        PresentEntries++;
    }

    /// <summary>Changes the flags of a present leaf (mprotect).</summary>
    public void UpdateFlags(ulong va, int level, PteFlags set, PteFlags clear)
    {
        var node = Walk(va, level, create: false);
        if (node is null)
        {
            return;
        }

        ref var e = ref node.Entries[Index(va, level)];
        if (e.Present)
        {
            e.Flags = (e.Flags | set) & ~clear;
        }
    }

    /// <summary>Removes the leaf at <paramref name="level"/> and returns it.</summary>
    public Pte Clear(ulong va, int level)
    {
        var node = Walk(va, level, create: false);
        if (node is null)
        {
            return default;
        }

        var i = Index(va, level);
        var e = node.Entries[i];
        if (e.Present)
        {
            node.Entries[i] = default;
            node.Used--;
            PresentEntries--;
        }

        return e;
    }

    private Node? Walk(ulong va, int level, bool create)
    {
        var node = _root;
        for (var l = _topLevel; l > level; l--)
        {
            var i = Index(va, l);
            node.Children ??= create ? new Node?[node.Entries.Length] : null;
            if (node.Children is null)
            {
                return null;
            }

            var child = node.Children[i];
            if (child is null)
            {
                if (!create)
                {
                    return null;
                }

                child = new Node(1 << _bits[l - 1]);
                node.Children[i] = child;
            }

            node = child;
        }

        return node;
    }

    /// <summary>
    /// Visits every present leaf that intersects [start, end), in address order, with the leaf's
    /// base address and level. The visitor may clear the leaf it is given.
    /// </summary>
    public void ForEachLeaf(ulong start, ulong end, LeafVisitor visitor)
    {
        if (start >= end)
        {
            return;
        }

        Visit(_root, _topLevel, 0, start, end, visitor);
    }

    public delegate void LeafVisitor(ulong va, int level, ref Pte pte);

    private void Visit(Node node, int level, ulong baseVa, ulong start, ulong end, LeafVisitor visitor)
    {
        var shift = _shifts[level];
        var span = 1UL << shift;
        var first = start > baseVa ? (int)((start - baseVa) >> shift) : 0;
        var count = node.Entries.Length;
        for (var i = first; i < count; i++)
        {
            var va = baseVa + ((ulong)i << shift);
            if (va >= end)
            {
                break;
            }

            if (level <= 2 && node.Entries[i].Present)
            {
                visitor(va, level, ref node.Entries[i]);
                if (!node.Entries[i].Present)
                {
                    node.Used--;
                    PresentEntries--;
                }
            }
            else if (level > 0 && node.Children?[i] is { } child)
            {
                Visit(child, level - 1, va, Math.Max(start, va), Math.Min(end, va + span), visitor);
            }

        }
    }
}
