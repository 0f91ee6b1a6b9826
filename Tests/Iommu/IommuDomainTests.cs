using KernelModel.Iommu;

namespace KernelModel.Tests.Iommu;

public class IommuDomainTests
{
    private const ulong K4 = 4UL << 10;
    private const ulong K64 = 64UL << 10;
    private const ulong M2 = 2UL << 20;
    private const ulong M512 = 512UL << 20;
    private const ulong G1 = 1UL << 30;
    private const ulong AllX86 = K4 | M2 | G1;
    private const IommuProt Rw = IommuProt.Read | IommuProt.Write;

    private static IommuDomain CreateSut(ulong bitmap = AllX86) => new(IoPageTableFormat.X86_64, bitmap);

    private static ulong LeafSizeAt(IommuDomain domain, ulong iova) =>
        domain.TryTranslate(iova, out _, out _, out ulong leafSize) ? leafSize : 0;

    public static TheoryData<ulong, ulong, ulong, ulong, long> PageSizeSelectionCases => new()
    {
        // bitmap, iova, paddr, size, expected IOPTEs
        { AllX86, 0, 0, M2, 1 },                        // 2M-aligned contiguous run: one 2M IOPTE
        { AllX86, M2, 4 * M2 + K4, M2, 512 },           // paddr not 2M-aligned: 4K IOPTEs
        { AllX86, G1, 3 * G1, G1, 1 },                  // 1G-aligned: one 1G IOPTE
        { AllX86, M2 - K4, M2 - K4, M2 + 2 * K4, 3 },   // 4K head + 2M + 4K tail
        { AllX86, G1 - M2, G1 - M2, G1 + 2 * M2, 3 },   // 2M head + 1G + 2M tail
        { AllX86, 0, G1 + M2, G1, 512 },                // same 2M phase but not 1G: 2M IOPTEs only
        { K4, 0, 0, M2, 512 },                          // 4K-only bitmap
        { K4 | M2, 0, 0, G1, 512 },                     // no 1G in the bitmap: 2M IOPTEs
        { M2 | G1, 0, 0, G1 + M2, 2 },                  // no 4K in the bitmap: 1G + 2M
    };

    [Theory]
    [MemberData(nameof(PageSizeSelectionCases))]
    public void Map_PageSizeSelection_WritesExpectedIoptes(ulong bitmap, ulong iova, ulong paddr, ulong size, long expectedIoptes)
    {
        var domain = CreateSut(bitmap);

        var result = domain.Map(new Iova(iova), new PhysAddr(paddr), size, Rw);

        Assert.True(result.IsOk, result.ToString());
        Assert.Equal(expectedIoptes, domain.LiveIoptes);
        Assert.Equal(expectedIoptes, domain.IopteWrites);
        Assert.Equal(size, domain.MappedBytes);
    }

    [Fact]
    public void Map_HeadAndTailAroundLargePage_UsesSmallLargeSmallLeaves()
    {
        var domain = CreateSut();

        var result = domain.Map(new Iova(M2 - K4), new PhysAddr(M2 - K4), M2 + 2 * K4, Rw);

        Assert.True(result.IsOk);
        Assert.Equal(K4, LeafSizeAt(domain, M2 - K4));
        Assert.Equal(M2, LeafSizeAt(domain, M2));
        Assert.Equal(M2, LeafSizeAt(domain, 2 * M2 - K4));
        Assert.Equal(K4, LeafSizeAt(domain, 2 * M2));
        Assert.Equal(0UL, LeafSizeAt(domain, 2 * M2 + K4));
        Assert.Equal(0UL, LeafSizeAt(domain, M2 - 2 * K4));
    }

    [Fact]
    public void Map_FourKOnlyBitmapOverLargeAlignedRun_WritesOneIoptePerPage()
    {
        var domain = CreateSut(K4);
        const ulong size = 16UL << 20;

        var result = domain.Map(new Iova(G1), new PhysAddr(G1), size, Rw);

        Assert.True(result.IsOk);
        Assert.Equal((long)(size / K4), domain.LiveIoptes);
        Assert.Equal(K4, LeafSizeAt(domain, G1 + M2));
        Assert.True(domain.TryIovaToPhys(new Iova(G1 + size - K4), out var last));
        Assert.Equal(G1 + size - K4, last.Value);
    }

    [Fact]
    public void Unmap_WholeMapping_ReturnsSizeAndEmptiesDomain()
    {
        var domain = CreateSut();
        domain.Map(new Iova(M2 - K4), new PhysAddr(M2 - K4), M2 + 2 * K4, Rw);

        ulong unmapped = domain.Unmap(new Iova(M2 - K4), M2 + 2 * K4);

        Assert.Equal(M2 + 2 * K4, unmapped);
        Assert.Equal(0, domain.LiveIoptes);
        Assert.Equal(0UL, domain.MappedBytes);
        Assert.Equal(6, domain.IopteWrites);
        Assert.False(domain.TryIovaToPhys(new Iova(M2), out _));
    }

    public static TheoryData<ulong, ulong, ulong> PartialLargeLeafCases => new()
    {
        // iova, size to unmap, expected bytes (a whole 2M leaf at [2M, 4M) is mapped)
        { M2, K4, M2 },                 // head of the leaf
        { M2 + K4, K4, M2 },            // inside the leaf
        { 2 * M2 - K4, K4, M2 },        // last page of the leaf
        { M2 + M2 / 2, M2, M2 },        // from inside past the end, which is a hole
    };

    [Theory]
    [MemberData(nameof(PartialLargeLeafCases))]
    public void Unmap_PartOfLargeLeaf_RemovesWholeLeafAndReturnsItsSize(ulong iova, ulong size, ulong expected)
    {
        var domain = CreateSut();
        domain.Map(new Iova(M2), new PhysAddr(G1), M2, Rw);

        ulong unmapped = domain.Unmap(new Iova(iova), size);

        Assert.Equal(expected, unmapped);
        Assert.Equal(0, domain.LiveIoptes);
        Assert.False(domain.TryIovaToPhys(new Iova(M2), out _));
        Assert.False(domain.TryIovaToPhys(new Iova(2 * M2 - K4), out _));
    }

    [Fact]
    public void Unmap_RangeStartingInsideOneLeafAndEndingInsideNext_RemovesBoth()
    {
        var domain = CreateSut();
        domain.Map(new Iova(0), new PhysAddr(0), 2 * M2, Rw);

        ulong unmapped = domain.Unmap(new Iova(M2 / 2), M2);

        Assert.Equal(2 * M2, unmapped);
        Assert.Equal(0, domain.LiveIoptes);
    }

    [Fact]
    public void Unmap_HoleInRange_StopsAtHoleAndReturnsBytesBefore()
    {
        var domain = CreateSut();
        domain.Map(new Iova(0), new PhysAddr(0), 2 * K4, Rw);
        domain.Map(new Iova(3 * K4), new PhysAddr(3 * K4), K4, Rw);

        ulong unmapped = domain.Unmap(new Iova(0), 4 * K4);

        Assert.Equal(2 * K4, unmapped);
        Assert.Equal(1, domain.LiveIoptes);
        Assert.True(domain.TryIovaToPhys(new Iova(3 * K4), out _));
    }

    [Fact]
    public void Unmap_HoleAcrossTableBoundary_StopsAtHole()
    {
        var domain = CreateSut(K4);
        // [2M - 8K, 2M) in one leaf table, then a hole at 2M, then [2M + 4K, 2M + 8K).
        domain.Map(new Iova(M2 - 2 * K4), new PhysAddr(0), 2 * K4, Rw);
        domain.Map(new Iova(M2 + K4), new PhysAddr(0), K4, Rw);

        ulong unmapped = domain.Unmap(new Iova(M2 - 2 * K4), 4 * K4);

        Assert.Equal(2 * K4, unmapped);
        Assert.Equal(1, domain.LiveIoptes);
    }

    [Fact]
    public void Unmap_FirstPageUnmapped_ReturnsZero()
    {
        var domain = CreateSut();
        domain.Map(new Iova(K4), new PhysAddr(K4), K4, Rw);

        ulong unmapped = domain.Unmap(new Iova(0), 2 * K4);

        Assert.Equal(0UL, unmapped);
        Assert.Equal(1, domain.LiveIoptes);
    }

    public static TheoryData<ulong, ulong> MisalignedUnmapCases => new()
    {
        { K4 / 2, K4 },     // iova
        { 0, K4 + 1 },      // size
        { 0, 0 },           // empty
    };

    [Theory]
    [MemberData(nameof(MisalignedUnmapCases))]
    public void Unmap_Misaligned_ReturnsZeroAndKeepsMapping(ulong iova, ulong size)
    {
        var domain = CreateSut();
        domain.Map(new Iova(0), new PhysAddr(0), 2 * K4, Rw);

        ulong unmapped = domain.Unmap(new Iova(iova), size);

        Assert.Equal(0UL, unmapped);
        Assert.Equal(2, domain.LiveIoptes);
    }

    public static TheoryData<ulong, ulong, ulong, ulong, ulong, ulong> OverlapCases => new()
    {
        // bitmap, existing iova, existing size, new iova, new paddr, new size
        { AllX86, 2 * K4, K4, 0, 0, 4 * K4 },                 // a 4K page in the middle of the new range
        { AllX86, 2 * M2, M2, 0, K4, 3 * M2 },                // new range (4K pieces) runs into a 2M leaf
        { AllX86, 0, M2, K4, K4, K4 },                        // a 4K page inside a 2M leaf
        { AllX86, M2 + K4, K4, M2, M2, M2 },                  // a 2M leaf over a table that has an entry
        { AllX86, G1 + M2, M2, 0, 0, 2 * G1 },                // 1G leaf, then a 1G over a table with a 2M leaf
        { K4, M2 + 100 * K4, K4, 0, 0, 2 * M2 },              // runs into a page in the second leaf table
    };

    [Theory]
    [MemberData(nameof(OverlapCases))]
    public void Map_OverlapsExistingMapping_ReturnsEexistAndLeavesNothingBehind(
        ulong bitmap, ulong existingIova, ulong existingSize, ulong iova, ulong paddr, ulong size)
    {
        var domain = CreateSut(bitmap);
        Assert.True(domain.Map(new Iova(existingIova), new PhysAddr(existingIova), existingSize, Rw).IsOk);
        long ioptesBefore = domain.LiveIoptes;
        ulong bytesBefore = domain.MappedBytes;

        var result = domain.Map(new Iova(iova), new PhysAddr(paddr), size, Rw);

        Assert.Equal(Errno.EEXIST, result.Error);
        Assert.Equal(ioptesBefore, domain.LiveIoptes);
        Assert.Equal(bytesBefore, domain.MappedBytes);
        Assert.True(domain.TryIovaToPhys(new Iova(existingIova), out var phys));
        Assert.Equal(existingIova, phys.Value);
        if (iova < existingIova)
        {
            Assert.False(domain.TryIovaToPhys(new Iova(iova), out _));
        }
    }

    [Fact]
    public void Map_EexistAfterPartialMap_CountsRollbackWrites()
    {
        var domain = CreateSut();
        domain.Map(new Iova(2 * K4), new PhysAddr(0), K4, Rw);

        var result = domain.Map(new Iova(0), new PhysAddr(0), 4 * K4, Rw);

        Assert.Equal(Errno.EEXIST, result.Error);
        // 1 for the existing page, 2 set and 2 cleared again by the failed call.
        Assert.Equal(5, domain.IopteWrites);
    }

    public static TheoryData<ulong, ulong, ulong, ulong, IommuProt> InvalidMapCases => new()
    {
        // bitmap, iova, paddr, size, prot
        { AllX86, 1, 0, K4, Rw },                  // iova not page-aligned
        { AllX86, 0, K4 / 2, K4, Rw },             // paddr not page-aligned
        { AllX86, 0, 0, K4 + 512, Rw },            // size not a page multiple
        { AllX86, 0, 0, 0, Rw },                   // empty
        { M2 | G1, K4, K4, M2, Rw },               // 4K-aligned but smallest page is 2M
        { AllX86, 0, 0, K4, (IommuProt)0x40 },     // unknown prot bit
        { AllX86, 0, 0, K4, (IommuProt)(-1) },     // negative prot
    };

    [Theory]
    [MemberData(nameof(InvalidMapCases))]
    public void Map_InvalidArguments_ReturnsEinval(ulong bitmap, ulong iova, ulong paddr, ulong size, IommuProt prot)
    {
        var domain = CreateSut(bitmap);

        var result = domain.Map(new Iova(iova), new PhysAddr(paddr), size, prot);

        Assert.Equal(Errno.EINVAL, result.Error);
        Assert.Equal(0, domain.LiveIoptes);
        Assert.Equal(0, domain.IopteWrites);
    }

    public static TheoryData<ulong, ulong, ulong> OutOfRangeCases => new()
    {
        // iova, paddr, size
        { (1UL << 48) - K4, 0, 2 * K4 },              // ends past the 48-bit input width
        { 1UL << 48, 0, K4 },                         // starts past it
        { K4, 0, ulong.MaxValue - (K4 - 1) },         // iova + size wraps past 2^64
        { 0, 1UL << 52, K4 },                         // paddr past the 52-bit output width
        { 0, ulong.MaxValue - (K4 - 1), K4 },         // paddr range at the very top of 2^64
    };

    [Theory]
    [MemberData(nameof(OutOfRangeCases))]
    public void Map_OutsideAddressWidth_ReturnsErange(ulong iova, ulong paddr, ulong size)
    {
        var domain = CreateSut();

        var result = domain.Map(new Iova(iova), new PhysAddr(paddr), size, Rw);

        Assert.Equal(Errno.ERANGE, result.Error);
        Assert.Equal(0, domain.LiveIoptes);
    }

    [Fact]
    public void Map_LastPageOfAddressWidth_Succeeds()
    {
        var domain = CreateSut();
        ulong iova = (1UL << 48) - K4;

        var result = domain.Map(new Iova(iova), new PhysAddr(K4), K4, Rw);

        Assert.True(result.IsOk);
        Assert.Equal(K4, domain.Unmap(new Iova(iova), ulong.MaxValue - (K4 - 1)));
    }

    public static TheoryData<ulong, ulong> OutsideApertureCases => new()
    {
        // iova, size; the aperture is [1G, 2G)
        { G1 - K4, K4 },         // below
        { G1 - K4, 2 * K4 },     // straddles the start
        { 2 * G1 - K4, 2 * K4 }, // straddles the end
        { 2 * G1, K4 },          // above
    };

    [Theory]
    [MemberData(nameof(OutsideApertureCases))]
    public void Map_OutsideAperture_ReturnsEfault(ulong iova, ulong size)
    {
        var domain = new IommuDomain(IoPageTableFormat.X86_64, AllX86, new Iova(G1), new Iova(2 * G1 - 1));

        var result = domain.Map(new Iova(iova), new PhysAddr(0), size, Rw);

        Assert.Equal(Errno.EFAULT, result.Error);
        Assert.Equal(0, domain.LiveIoptes);
    }

    [Fact]
    public void Map_WholeAperture_Succeeds()
    {
        var domain = new IommuDomain(IoPageTableFormat.X86_64, AllX86, new Iova(G1), new Iova(2 * G1 - 1));

        var result = domain.Map(new Iova(G1), new PhysAddr(0), G1, Rw);

        Assert.True(result.IsOk);
        Assert.Equal(1, domain.LiveIoptes);
    }

    public static TheoryData<ulong, ulong> IovaToPhysCases => new()
    {
        // iova, expected phys; mapped: 4K at 0x1000 -> 0x7000, 2M at 2M -> 1G + 2M, 1G at 1G -> 5G
        { 0x1000, 0x7000 },
        { 0x1abc, 0x7abc },
        { M2, G1 + M2 },
        { M2 + 0x12345, G1 + M2 + 0x12345 },
        { 2 * M2 - 1, G1 + 2 * M2 - 1 },
        { G1 + 0x3456789, 5 * G1 + 0x3456789 },
    };

    [Theory]
    [MemberData(nameof(IovaToPhysCases))]
    public void TryIovaToPhys_OffsetInsideLeaf_ReturnsLeafAddressPlusOffset(ulong iova, ulong expected)
    {
        var domain = CreateSut();
        domain.Map(new Iova(0x1000), new PhysAddr(0x7000), K4, Rw);
        domain.Map(new Iova(M2), new PhysAddr(G1 + M2), M2, Rw);
        domain.Map(new Iova(G1), new PhysAddr(5 * G1), G1, Rw);

        bool found = domain.TryIovaToPhys(new Iova(iova), out var phys);

        Assert.True(found);
        Assert.Equal(expected, phys.Value);
    }

    [Theory]
    [InlineData(0UL)]
    [InlineData(0x2000UL)]
    [InlineData(1UL << 48)]
    [InlineData(ulong.MaxValue)]
    public void TryIovaToPhys_Unmapped_ReturnsFalse(ulong iova)
    {
        var domain = CreateSut();
        domain.Map(new Iova(0x1000), new PhysAddr(0x7000), K4, Rw);

        bool found = domain.TryIovaToPhys(new Iova(iova), out var phys);

        Assert.False(found);
        Assert.Equal(0UL, phys.Value);
    }

    [Fact]
    public void TryTranslate_MappedLeaf_ReturnsProtAndLeafSize()
    {
        var domain = CreateSut();
        const IommuProt prot = IommuProt.Read | IommuProt.Mmio | IommuProt.NoExec;
        domain.Map(new Iova(M2), new PhysAddr(3 * M2), M2, prot);

        bool found = domain.TryTranslate(M2 + 0x800, out ulong phys, out var gotProt, out ulong leafSize);

        Assert.True(found);
        Assert.Equal(3 * M2 + 0x800, phys);
        Assert.Equal(prot, gotProt);
        Assert.Equal(M2, leafSize);
    }

    [Fact]
    public void Map_LargeLeafOverEmptiedTable_ReusesCachedTables()
    {
        var domain = CreateSut();
        domain.Map(new Iova(0), new PhysAddr(0), K4, Rw);
        domain.Unmap(new Iova(0), K4);
        int nodes = domain.TableNodeCount;

        var large = domain.Map(new Iova(0), new PhysAddr(0), M2, Rw);
        ulong unmapped = domain.Unmap(new Iova(0), M2);
        var small = domain.Map(new Iova(K4), new PhysAddr(0), K4, Rw);

        Assert.True(large.IsOk);
        Assert.Equal(M2, unmapped);
        Assert.True(small.IsOk);
        Assert.Equal(K4, LeafSizeAt(domain, K4));
        Assert.Equal(nodes, domain.TableNodeCount);
    }

    [Fact]
    public void MapUnmap_SteadyStateTwoMiB_AllocatesNothing()
    {
        var domain = CreateSut();
        for (int i = 0; i < 3; i++)
        {
            domain.Map(new Iova(G1), new PhysAddr(M2), M2, Rw);
            domain.Unmap(new Iova(G1), M2);
        }

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100; i++)
        {
            domain.Map(new Iova(G1), new PhysAddr(M2), M2, Rw);
            domain.Unmap(new Iova(G1), M2);
        }

        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(0, allocated);
        Assert.Equal(0, domain.LiveIoptes);
        Assert.Equal(206, domain.IopteWrites);
    }

    [Fact]
    public void Format_X86_64_HoldsFourKTwoMOneGAndHalfTPages()
    {
        var format = IoPageTableFormat.X86_64;

        Assert.Equal(new[] { K4, M2, G1, 512 * G1 }, format.PageSizes);
        Assert.Equal(K4 | M2 | G1 | (512 * G1), format.PageSizeBitmap);
        Assert.Equal((1UL << 48) - 1, format.MaxIova);
    }

    [Fact]
    public void Format_Ppc64_HoldsSixtyFourKFiveTwelveMAndFourTPages()
    {
        var format = IoPageTableFormat.Ppc64;

        Assert.Equal(new[] { K64, M512, 4UL << 40 }, format.PageSizes);
        Assert.Equal(16, format.GranuleShift);
        Assert.Equal(64, format.RootEntries);
    }

    public static TheoryData<ulong, ulong, ulong, long> Granule64KCases => new()
    {
        // iova, paddr, size, expected IOPTEs with a 64K|512M bitmap
        { 0, 0, M512, 1 },
        { M512, M512 + K64, M512, 8192 },
        { M512 - K64, M512 - K64, M512 + 2 * K64, 3 },
        { 4UL << 40, 0, 2 * M512, 2 },
    };

    [Theory]
    [MemberData(nameof(Granule64KCases))]
    public void Map_SixtyFourKGranule_PicksLargestPages(ulong iova, ulong paddr, ulong size, long expectedIoptes)
    {
        var domain = new IommuDomain(IoPageTableFormat.Ppc64, K64 | M512);

        var result = domain.Map(new Iova(iova), new PhysAddr(paddr), size, Rw);

        Assert.True(result.IsOk, result.ToString());
        Assert.Equal(expectedIoptes, domain.LiveIoptes);
        Assert.True(domain.TryIovaToPhys(new Iova(iova + size - 1), out var phys));
        Assert.Equal(paddr + size - 1, phys.Value);
        Assert.Equal(size, domain.Unmap(new Iova(iova), size));
    }

    [Fact]
    public void Map_SixtyFourKGranuleWithFourKAlignment_ReturnsEinval()
    {
        var domain = new IommuDomain(IoPageTableFormat.Ppc64, K64 | M512);

        var result = domain.Map(new Iova(K4), new PhysAddr(0), K64, Rw);

        Assert.Equal(Errno.EINVAL, result.Error);
    }

    [Theory]
    [InlineData(0UL)]
    [InlineData(K64)]          // not a size of the 4K-granule format
    [InlineData(K4 | 0x800)]   // 2K is not either
    public void Constructor_BitmapNotSubsetOfFormat_Throws(ulong bitmap)
    {
        Assert.Throws<ArgumentException>(() => new IommuDomain(IoPageTableFormat.X86_64, bitmap));
    }

    [Fact]
    public void Constructor_ApertureBeyondInputWidth_Throws()
    {
        Assert.Throws<ArgumentException>(() =>
            new IommuDomain(IoPageTableFormat.X86_64, AllX86, new Iova(0), new Iova(1UL << 48)));
    }

    [Theory]
    [InlineData(12, 9, 4, 39)]   // top level not needed
    [InlineData(12, 9, 4, 49)]   // levels do not cover the width
    [InlineData(11, 9, 4, 48)]   // granule below 4K
    public void FormatConstructor_InconsistentGeometry_Throws(int granuleShift, int bits, int levels, int inputBits)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new IoPageTableFormat(granuleShift, bits, levels, inputBits));
    }
}
