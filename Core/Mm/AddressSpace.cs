using KernelModel.Kernel;

namespace KernelModel.Mm;

/// <summary>
/// An inode's address space (struct address_space): the VMAs that map it (i_mmap) and, for
/// page-cache-backed files such as shmem, its folios by page offset.
/// </summary>
public sealed class AddressSpace
{
    private readonly List<Vma> _vmas = [];
    private readonly Dictionary<ulong, Folio> _pageCache = [];
    private readonly Lock _lock = new();

    internal AddressSpace(Inode host) => Host = host;

    /// <summary>The inode it belongs to.</summary>
    public Inode Host { get; }

    /// <summary>How many VMAs map it.</summary>
    public int MappedVmaCount
    {
        get
        {
            lock (_lock)
            {
                return _vmas.Count;
            }
        }
    }

    /// <summary>The VMAs that map it, as a snapshot.</summary>
    public IReadOnlyList<Vma> Vmas
    {
        get
        {
            lock (_lock)
            {
                return [.. _vmas];
            }
        }
    }

    internal void Link(Vma vma)
    {
        lock (_lock)
        {
            _vmas.Add(vma);
        }
    }

    internal void Unlink(Vma vma)
    {
        lock (_lock)
        {
            _vmas.Remove(vma);
        }
    }

    /// <summary>
    /// unmap_mapping_range(): zaps the PTEs of every VMA of this file in the byte range
    /// [holeBegin, holeBegin + holeLen) of the file, and nothing else; a length of 0 means to the end.
    /// The next touch of a zapped page faults again.
    /// </summary>
    public void UnmapMappingRange(ulong holeBegin, ulong holeLen)
    {
        foreach (var vma in Vmas)
        {
            // As unmap_mapping_range(): the first page is holeBegin's, the page count is holeLen
            // rounded up on its own (not the end rounded up), and a count that overflows means
            // "to the end".
            var pageSize = vma.Mm.Geometry.PageSize;
            var first = holeBegin / pageSize;
            var pages = holeLen / pageSize + (holeLen % pageSize != 0 ? 1UL : 0);
            var end = pages == 0 || pages > ulong.MaxValue - first ? ulong.MaxValue : first + pages;
            ZapPages(vma, first, end);
        }
    }

    /// <summary>unmap_mapping_pages(): as <see cref="UnmapMappingRange"/> in pages; 0 pages means to the end.</summary>
    public void UnmapMappingPages(ulong pgoffStart, ulong nrPages)
    {
        var end = nrPages == 0 || nrPages > ulong.MaxValue - pgoffStart ? ulong.MaxValue : pgoffStart + nrPages;
        foreach (var vma in Vmas)
        {
            ZapPages(vma, pgoffStart, end);
        }
    }

    private static void ZapPages(Vma vma, ulong pgoffStart, ulong pgoffEnd)
    {
        var shift = vma.Mm.Geometry.PageShift;
        var vmaPages = vma.Length >> shift;
        var first = Math.Max(pgoffStart, vma.PgOff);
        var last = Math.Min(pgoffEnd, vma.PgOff + vmaPages);
        if (first < last)
        {
            vma.Mm.ZapVmaRange(vma, vma.Start + ((first - vma.PgOff) << shift), vma.Start + ((last - vma.PgOff) << shift));
        }
    }

    internal Folio? FindOrAddPage(ulong pgoff, Func<Folio?> allocate)
    {
        lock (_lock)
        {
            if (_pageCache.TryGetValue(pgoff, out var folio))
            {
                return folio;
            }

            folio = allocate();
            if (folio is not null)
            {
                _pageCache[pgoff] = folio;
            }

            return folio;
        }
    }

    /// <summary>Drops every page-cache folio (truncate on last close).</summary>
    internal void Truncate(PhysicalMemory phys)
    {
        List<Folio> folios;
        lock (_lock)
        {
            folios = [.. _pageCache.Values];
            _pageCache.Clear();
        }

        foreach (var folio in folios)
        {
            if (folio.PutRefs(1))
            {
                phys.FreeFolio(folio);
            }
        }
    }

    /// <summary>Page-cache folios held.</summary>
    public int CachedPages
    {
        get
        {
            lock (_lock)
            {
                return _pageCache.Count;
            }
        }
    }
}
