using KernelModel.Mm;
using static KernelModel.Tests.Mm.MmTestHelpers;

namespace KernelModel.Tests.Mm;

public class PhysicalMemoryTests
{
    private static PhysicalMemory CreateSut(ulong ramBytes = G1, PageGeometry? geometry = null) =>
        new(geometry ?? PageGeometry.X86_64, [new RamRange(new PhysAddr(0), ramBytes)]);

    [Fact]
    public void Constructor_OneTebibyte_AllocatesNoPageMetadata()
    {
        var phys = CreateSut(1UL << 40);

        Assert.Equal((1UL << 40) / K4, phys.TotalPages);
        Assert.Equal(phys.TotalPages, phys.FreePages);
        Assert.Equal(0, phys.PopulatedSections);
        Assert.Equal(0, phys.LiveFolios);
    }

    [Fact]
    public void AllocFolio_BaseThenFree_MergesBackIntoTheLargestBlock()
    {
        var phys = CreateSut(G1);
        var small = phys.AllocFolio(0, FolioFlags.Anon)!;
        var freeWhileAllocated = phys.FreePages;

        phys.FreeFolio(small);
        var huge = phys.AllocFolio(PageGeometry.X86_64.PudOrder, FolioFlags.Hugetlb);

        Assert.Equal(phys.TotalPages - 1, freeWhileAllocated);
        Assert.NotNull(huge);
        Assert.Equal(new Pfn(0), huge.Head);
        Assert.Equal(0UL, phys.FreePages);
    }

    [Fact]
    public void FreeFolio_ManyMixedOrders_RestoresFreePagesAndLiveFolios()
    {
        var phys = CreateSut(G1);
        var folios = new List<Folio>();
        for (var i = 0; i < 64; i++)
        {
            folios.Add(phys.AllocFolio(i % 3 == 0 ? 9 : 0, FolioFlags.Anon)!);
        }

        var live = phys.LiveFolios;
        foreach (var folio in folios.Where((_, i) => i % 2 == 1).Concat(folios.Where((_, i) => i % 2 == 0)))
        {
            phys.FreeFolio(folio);
        }

        Assert.Equal(64, live);
        Assert.Equal(phys.TotalPages, phys.FreePages);
        Assert.Equal(0, phys.LiveFolios);
        Assert.All(folios, f => Assert.True(f.IsFree));
        Assert.NotNull(phys.AllocFolio(PageGeometry.X86_64.PudOrder, FolioFlags.None));
    }

    [Fact]
    public void AllocFolio_Exhausted_ReturnsNull()
    {
        var phys = CreateSut(4 * M2);
        for (var i = 0; i < 4; i++)
        {
            Assert.NotNull(phys.AllocFolio(9, FolioFlags.Anon));
        }

        Assert.Null(phys.AllocFolio(0, FolioFlags.Anon));
        Assert.Equal(0UL, phys.FreePages);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(19)]
    public void AllocFolio_OrderOutOfRange_ReturnsNull(int order)
    {
        var phys = CreateSut();

        Assert.Null(phys.AllocFolio(order, FolioFlags.None));
        Assert.Equal(phys.TotalPages, phys.FreePages);
    }

    [Fact]
    public void AllocFolio_HugeOrder_OneRecordCoversEveryPage()
    {
        var phys = CreateSut();
        var folio = phys.AllocFolio(9, FolioFlags.TransHuge)!;

        var found = phys.TryGetFolio(folio.Head + 300, out var inside);
        var past = phys.TryGetFolio(folio.Head + 512, out _);

        Assert.True(found);
        Assert.Same(folio, inside);
        Assert.False(past);
        Assert.Equal(1, phys.LiveFolios);
        Assert.Equal(1, phys.PopulatedSections);
    }

    [Fact]
    public void FreeFolio_Twice_Throws()
    {
        var phys = CreateSut();
        var folio = phys.AllocFolio(0, FolioFlags.Anon)!;
        phys.FreeFolio(folio);

        Assert.Throws<InvalidOperationException>(() => phys.FreeFolio(folio));
    }

    [Fact]
    public void AllocFolio_SamePagesTwice_HaveDifferentGenerations()
    {
        var phys = CreateSut();
        var first = phys.AllocFolio(0, FolioFlags.Anon)!;
        phys.FreeFolio(first);

        var second = phys.AllocFolio(0, FolioFlags.Anon)!;

        Assert.Equal(first.Head, second.Head);
        Assert.NotEqual(first.Generation, second.Generation);
    }

    [Fact]
    public void AddMmio_OverlapsRam_ReturnsEexist()
    {
        var phys = CreateSut(G1);

        var result = phys.AddMmio(new MmioRegion("bad", new PhysAddr(G1 - K4), 2 * K4, "dev"));

        Assert.Equal(Errno.EEXIST, result.Error);
        Assert.Empty(phys.Mmio);
    }

    [Theory]
    [InlineData(0x1_0000_0800UL, 0x1000UL)]
    [InlineData(0x1_0000_0000UL, 0x800UL)]
    [InlineData(0x1_0000_0000UL, 0UL)]
    public void AddMmio_Misaligned_ReturnsEinval(ulong start, ulong size)
    {
        var phys = CreateSut(G1);

        Assert.Equal(Errno.EINVAL, phys.AddMmio(new MmioRegion("bad", new PhysAddr(start), size, "dev")).Error);
    }

    [Fact]
    public void AddMmio_OverlapsOtherMmio_ReturnsEexist()
    {
        var phys = CreateSut(G1);
        phys.AddMmio(new MmioRegion("a", new PhysAddr(2 * G1), M1, "dev"));

        var result = phys.AddMmio(new MmioRegion("b", new PhysAddr(2 * G1 + M1 - K4), M1, "dev"));

        Assert.Equal(Errno.EEXIST, result.Error);
    }

    [Fact]
    public void IsValidPfn_RamMmioAndHole_OnlyRamIsValid()
    {
        var phys = CreateSut(G1);
        phys.AddMmio(new MmioRegion("bar", new PhysAddr(2 * G1), M1, "dev"));

        Assert.True(phys.IsValidPfn(new Pfn(5)));
        Assert.False(phys.IsValidPfn(new Pfn((2 * G1) / K4)));
        Assert.False(phys.IsValidPfn(new Pfn((3 * G1) / K4)));
    }

    [Fact]
    public void Read_UnwrittenRam_ReadsZeroesAndHoleReadsAllOnes()
    {
        var phys = CreateSut(G1);
        var ram = new byte[16];
        var hole = new byte[16];

        phys.Read(new PhysAddr(12345), ram);
        phys.Read(new PhysAddr(5 * G1), hole);

        Assert.All(ram, b => Assert.Equal(0, b));
        Assert.All(hole, b => Assert.Equal(0xff, b));
    }

    [Fact]
    public void Write_AcrossPageBoundaryIntoMmio_ReachesRamAndRegionStore()
    {
        var phys = CreateSut(G1);
        var region = new MmioRegion("bar", new PhysAddr(G1), M1, "dev");
        phys.AddMmio(region);
        byte[] data = [1, 2, 3, 4, 5, 6, 7, 8];

        phys.Write(new PhysAddr(G1 - 4), data);
        var back = new byte[8];
        phys.Read(new PhysAddr(G1 - 4), back);
        var inRegion = new byte[4];
        region.Read(0, inRegion);

        Assert.Equal(data, back);
        Assert.Equal([5, 6, 7, 8], inRegion);
    }

    [Fact]
    public void ZeroFolio_WrittenPage_ReadsZeroAgain()
    {
        var phys = CreateSut();
        var folio = phys.AllocFolio(0, FolioFlags.Anon)!;
        var addr = new PhysAddr(folio.Head.Value * K4);
        phys.Write(addr, [9, 9, 9]);

        phys.ZeroFolio(folio);
        var back = new byte[3];
        phys.Read(addr, back);

        Assert.Equal([0, 0, 0], back);
    }

    [Fact]
    public void Geometry_Ppc64_Has64KPagesAnd16MPmdAndNoPud()
    {
        var g = PageGeometry.Ppc64;

        Assert.Equal(K64, g.PageSize);
        Assert.Equal(M16, g.PmdSize);
        Assert.Equal(0UL, g.PudSize);
        Assert.Equal(8, g.PmdOrder);
        Assert.Equal(8, g.MaxOrder);
    }
}
