using System.IO;
using System.Text.Json;

namespace KernelModel.Tests.Hosting;

public class MachineSpecTests
{
    private static string SpecWithRamSize(string size) =>
        $$"""{ "name": "t", "arch": "x86_64", "ram": [ { "start": "0x0", "size": {{size}} } ] }""";

    public static TheoryData<string, ulong> Sizes => new()
    {
        { "4096", 4096 },
        { "\"4096\"", 4096 },
        { "\"0x1000\"", 0x1000 },
        { "\"0X2000\"", 0x2000 },
        { "\"64KiB\"", 64UL << 10 },
        { "\"2M\"", 2UL << 20 },
        { "\"3GiB\"", 3UL << 30 },
        { "\"1TiB\"", 1UL << 40 },
        { "\"1_048_576\"", 1UL << 20 },
    };

    [Theory]
    [MemberData(nameof(Sizes))]
    public void Parse_SizeForms_ReadAsBytes(string size, ulong expected)
    {
        var spec = MachineSpec.Parse(SpecWithRamSize(size));

        Assert.Equal(expected, Assert.Single(spec.Ram).Size);
    }

    public static TheoryData<string, string> BadSpecs => new()
    {
        { SpecWithRamSize("\"12XB\""), "'12XB' is not a size" },
        { SpecWithRamSize("\"0xZZ\""), "'0xZZ' is not a size" },
        { SpecWithRamSize("\"99999999999TiB\""), "is not a size" },
        { SpecWithRamSize("-1"), "Size" },
        { "{ \"thp\": \"sometimes\" }", "thp" },
        { "{ \"ram\": 5 }", "ram" },
        { "{ not json", "<json>" },
        { "null", "empty machine spec" },
    };

    [Theory]
    [MemberData(nameof(BadSpecs))]
    public void Parse_BadSpec_ThrowsInvalidDataExceptionWithReason(string json, string reason)
    {
        var e = Assert.Throws<InvalidDataException>(() => MachineSpec.Parse(json));

        Assert.Contains(reason, e.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void Load_FileOnDisk_ParsesAndNamesFileInErrors()
    {
        var good = Path.GetTempFileName();
        var bad = Path.GetTempFileName();
        try
        {
            File.WriteAllText(good, "// comments are allowed\n" + SpecWithRamSize("\"1GiB\""));
            File.WriteAllText(bad, SpecWithRamSize("\"lots\""));

            var spec = MachineSpec.Load(good);
            var e = Assert.Throws<InvalidDataException>(() => MachineSpec.Load(bad));

            Assert.Equal(1UL << 30, Assert.Single(spec.Ram).Size);
            Assert.Contains(bad, e.Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(good);
            File.Delete(bad);
        }
    }

    [Fact]
    public void Default_Embedded_IsX86WithMsiWindowAndFourDevices()
    {
        var spec = MachineSpec.Default;

        Assert.Equal("x86_64", spec.Arch);
        Assert.Equal(64UL << 30, spec.Ram.Aggregate(0UL, (n, r) => n + r.Size));
        Assert.Equal(new ulong[] { 4096, 2UL << 20, 1UL << 30 }, spec.Iommu.PageSizes);
        var msi = Assert.Single(spec.Iommu.ReservedRegions);
        Assert.Equal((0xfee00000UL, 0xfeefffffUL, KernelModel.Iommu.ReservedRegionType.Msi), (msi.Start, msi.End, msi.Type));
        Assert.Equal(4, spec.Devices.Count);
        Assert.True(spec.Settings.StrictMmioMaps);
    }

    [Fact]
    public void Ppc64_Embedded_Boots64KPagesAnd16MPmd()
    {
        var machine = Machine.Boot(MachineSpec.Ppc64);

        Assert.Equal("ppc64", machine.Geometry.Arch);
        Assert.Equal(64UL << 10, machine.Geometry.PageSize);
        Assert.Equal(16UL << 20, machine.Geometry.PmdSize);
        Assert.Equal(0UL, machine.Geometry.PudSize);
        Assert.Equal((16UL << 30) >> 16, machine.Memory.TotalPages);
        Assert.Equal((64UL << 10) | (512UL << 20), machine.IommuPageSizeBitmap);
    }

    [Fact]
    public void ToJson_Default_RoundTripsThroughParse()
    {
        var json = MachineSpec.Default.ToJson();

        var again = MachineSpec.Parse(json).ToJson();

        Assert.Equal(json, again);
        Assert.Contains("\"3GiB\"", json, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_DeviceProperties_KeptForTheBusPlugin()
    {
        const string json = """{ "devices": [ { "name": "d", "properties": { "vendor": "0x8086" } } ] }""";

        var spec = MachineSpec.Parse(json);

        Assert.Equal(JsonValueKind.Object, spec.Devices[0].Properties.ValueKind);
        Assert.Equal("0x8086", spec.Devices[0].Properties.GetProperty("vendor").GetString());
    }
}
