using System.Collections.ObjectModel;

namespace KernelModel.Iommu;

/// <summary>
/// The shape of a multi-level radix I/O page table: granule (smallest page), index bits per level,
/// number of levels and address widths. Level 0 is the leaf-most level (granule-sized pages); each
/// level above covers <c>2^BitsPerLevel</c> times more, and every level can hold a leaf IOPTE
/// (a "block" or "large page"), so the page sizes a table can hold are one per level.
/// </summary>
public sealed class IoPageTableFormat
{
    /// <summary>
    /// x86-64 (VT-d second level / AMD-Vi v1 style): 4 KiB granule, 9 bits per level, 4 levels,
    /// 48-bit input, 52-bit output. Page sizes 4 KiB, 2 MiB, 1 GiB, 512 GiB.
    /// </summary>
    public static IoPageTableFormat X86_64 { get; } = new(granuleShift: 12, bitsPerLevel: 9, levels: 4, inputAddressBits: 48);

    /// <summary>
    /// The 64 KiB-granule format used for ppc64 machines (whose page size is 64 KiB): 13 bits per level,
    /// 3 levels, 48-bit input, 52-bit output. Page sizes 64 KiB, 512 MiB, 4 TiB; the root table has
    /// only 64 entries because 48 bits do not fill a whole top level.
    /// </summary>
    public static IoPageTableFormat Ppc64 { get; } = new(granuleShift: 16, bitsPerLevel: 13, levels: 3, inputAddressBits: 48);

    private readonly ulong[] _pageSizes;

    /// <summary>Creates a format and checks that its geometry is consistent.</summary>
    /// <param name="granuleShift">log2 of the smallest page: 12 for 4 KiB, 16 for 64 KiB (at least 12).</param>
    /// <param name="bitsPerLevel">Index bits per table level: 9 for a 4 KiB granule, 13 for 64 KiB.</param>
    /// <param name="levels">Number of table levels.</param>
    /// <param name="inputAddressBits">
    /// IOVA width. The top level must be needed (wider than what the levels below cover) and the
    /// levels must cover it; at most 63 bits, so that an IOVA range end always fits a <see cref="ulong"/>.
    /// </param>
    /// <param name="outputAddressBits">Physical address width an IOPTE can hold (at most 64).</param>
    /// <exception cref="ArgumentOutOfRangeException">The geometry is inconsistent.</exception>
    public IoPageTableFormat(int granuleShift, int bitsPerLevel, int levels, int inputAddressBits, int outputAddressBits = 52)
    {
        // The IOPTE encoding keeps prot and the present bit in the low 12 bits of the physical address.
        ArgumentOutOfRangeException.ThrowIfLessThan(granuleShift, 12);
        ArgumentOutOfRangeException.ThrowIfLessThan(bitsPerLevel, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(bitsPerLevel, 20);
        ArgumentOutOfRangeException.ThrowIfLessThan(levels, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(inputAddressBits, 63);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(outputAddressBits, 64);
        ArgumentOutOfRangeException.ThrowIfLessThan(outputAddressBits, granuleShift);

        int topShift = granuleShift + (levels - 1) * bitsPerLevel;
        if (inputAddressBits <= topShift || inputAddressBits > topShift + bitsPerLevel)
        {
            throw new ArgumentOutOfRangeException(
                nameof(inputAddressBits),
                inputAddressBits,
                $"{levels} levels of {bitsPerLevel} bits over a 2^{granuleShift} granule cover ({topShift}, {topShift + bitsPerLevel}] bits");
        }

        GranuleShift = granuleShift;
        BitsPerLevel = bitsPerLevel;
        Levels = levels;
        InputAddressBits = inputAddressBits;
        OutputAddressBits = outputAddressBits;
        EntriesPerTable = 1 << bitsPerLevel;
        RootEntries = 1 << (inputAddressBits - topShift);
        MaxIova = ulong.MaxValue >> (64 - inputAddressBits);
        MaxPhys = ulong.MaxValue >> (64 - outputAddressBits);

        _pageSizes = new ulong[levels];
        ulong bitmap = 0;
        for (int level = 0; level < levels; level++)
        {
            _pageSizes[level] = 1UL << LevelShift(level);
            bitmap |= _pageSizes[level];
        }

        PageSizes = new ReadOnlyCollection<ulong>(_pageSizes);
        PageSizeBitmap = bitmap;
    }

    /// <summary>log2 of the granule (the smallest page).</summary>
    public int GranuleShift { get; }

    /// <summary>The granule in bytes.</summary>
    public ulong GranuleSize => 1UL << GranuleShift;

    /// <summary>Index bits per table level; a full table has 2^BitsPerLevel entries.</summary>
    public int BitsPerLevel { get; }

    /// <summary>Number of table levels.</summary>
    public int Levels { get; }

    /// <summary>Width of the IOVA (input) address space in bits.</summary>
    public int InputAddressBits { get; }

    /// <summary>Width of the physical (output) addresses an IOPTE can hold, in bits.</summary>
    public int OutputAddressBits { get; }

    /// <summary>The highest IOVA the table can translate: 2^InputAddressBits - 1.</summary>
    public ulong MaxIova { get; }

    /// <summary>The highest physical address an IOPTE can point at: 2^OutputAddressBits - 1.</summary>
    public ulong MaxPhys { get; }

    /// <summary>The leaf page size at each level, index 0 = leaf-most level (e.g. 4 KiB, 2 MiB, 1 GiB, 512 GiB).</summary>
    public IReadOnlyList<ulong> PageSizes { get; }

    /// <summary>All leaf page sizes as a bitmap (bit n set = 2^n bytes), the form of iommu_domain's pgsize_bitmap.</summary>
    public ulong PageSizeBitmap { get; }

    /// <summary>Entries in a full (non-root) table node.</summary>
    internal int EntriesPerTable { get; }

    /// <summary>Entries in the root node: fewer than a full table when the input width does not fill the top level.</summary>
    internal int RootEntries { get; }

    /// <summary>The leaf page size at <paramref name="level"/> (0 = leaf-most).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="level"/> is not a level of this format.</exception>
    public ulong PageSizeAt(int level)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(level);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(level, Levels);
        return _pageSizes[level];
    }

    /// <summary>log2 of the bytes one entry covers at <paramref name="level"/>.</summary>
    internal int LevelShift(int level) => GranuleShift + level * BitsPerLevel;

    /// <inheritdoc />
    public override string ToString() =>
        $"{Levels}-level, 2^{GranuleShift} granule, {BitsPerLevel} bits/level, {InputAddressBits}-bit IOVA";
}
