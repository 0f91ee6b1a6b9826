namespace KernelModel.Mm;

/// <summary>
/// The machine's paging geometry: base page size and the sizes a page-table entry can map at the
/// PMD and PUD levels. x86_64: 4 KiB, 2 MiB, 1 GiB. ppc64 (hash MMU, 64 KiB pages): 64 KiB and 16 MiB.
/// </summary>
public sealed class PageGeometry
{
    private PageGeometry(string arch, int pageShift, int pmdShift, int pudShift, int vaBits)
    {
        Arch = arch;
        PageShift = pageShift;
        PmdShift = pmdShift;
        PudShift = pudShift;
        VaBits = vaBits;
    }

    /// <summary>x86_64 with 4-level paging.</summary>
    public static PageGeometry X86_64 { get; } = new("x86_64", 12, 21, 30, 48);

    /// <summary>ppc64 (hash MMU, 64 KiB base pages, 16 MiB PMD); no PUD leaf.</summary>
    public static PageGeometry Ppc64 { get; } = new("ppc64", 16, 24, 0, 48);

    /// <summary>The architecture name.</summary>
    public string Arch { get; }

    /// <summary>PAGE_SHIFT.</summary>
    public int PageShift { get; }

    /// <summary>PAGE_SIZE.</summary>
    public ulong PageSize => 1UL << PageShift;

    /// <summary>PMD_SHIFT: the THP and first hugetlb size.</summary>
    public int PmdShift { get; }

    /// <summary>PUD_SHIFT, or 0 when the PUD level cannot hold a leaf.</summary>
    public int PudShift { get; }

    /// <summary>User virtual address bits.</summary>
    public int VaBits { get; }

    /// <summary>PMD_SIZE.</summary>
    public ulong PmdSize => 1UL << PmdShift;

    /// <summary>PUD_SIZE, or 0.</summary>
    public ulong PudSize => PudShift == 0 ? 0 : 1UL << PudShift;

    /// <summary>The folio order of a PMD mapping.</summary>
    public int PmdOrder => PmdShift - PageShift;

    /// <summary>The folio order of a PUD mapping, or 0.</summary>
    public int PudOrder => PudShift == 0 ? 0 : PudShift - PageShift;

    /// <summary>The largest folio order the machine allocates.</summary>
    public int MaxOrder => Math.Max(PmdOrder, PudOrder);

    /// <summary>The leaf shifts a page table can hold, smallest first.</summary>
    internal int[] LeafShifts => PudShift == 0 ? [PageShift, PmdShift] : [PageShift, PmdShift, PudShift];

    /// <summary>Looks a geometry up by architecture name.</summary>
    public static bool TryGet(string arch, out PageGeometry geometry)
    {
        geometry = arch switch
        {
            "x86_64" => X86_64,
            "ppc64" or "ppc64le" => Ppc64,
            _ => null!,
        };
        return geometry is not null;
    }

    /// <summary>True when <paramref name="value"/> is a multiple of the base page size.</summary>
    public bool IsPageAligned(ulong value) => (value & (PageSize - 1)) == 0;

    /// <summary>Rounds up to a page boundary; false on overflow.</summary>
    public bool TryPageAlignUp(ulong value, out ulong aligned)
    {
        var mask = PageSize - 1;
        if (value > ulong.MaxValue - mask)
        {
            aligned = 0;
            return false;
        }

        aligned = (value + mask) & ~mask;
        return true;
    }
}
