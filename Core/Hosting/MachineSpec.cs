using System.Globalization;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace KernelModel;

/// <summary>
/// The description of a machine: architecture, RAM, IOMMU, groups, devices and the settings that
/// only the machine's owner (never a user process) may change. Loaded from JSON; sizes and
/// addresses may be numbers, hex strings ("0xfee00000") or sizes with units ("64KiB", "32GiB").
/// </summary>
public sealed record MachineSpec
{
    internal static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        Converters = { new SizeConverter(), new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
        WriteIndented = true,
    };

    /// <summary>A name for the machine.</summary>
    public string Name { get; init; } = "machine";

    /// <summary>"x86_64" (4 KiB pages) or "ppc64" (64 KiB pages).</summary>
    public string Arch { get; init; } = "x86_64";

    /// <summary>The RAM ranges.</summary>
    public IReadOnlyList<RangeSpec> Ram { get; init; } = [];

    /// <summary>Transparent huge pages: madvise (default), always or never.</summary>
    public Mm.ThpMode Thp { get; init; } = Mm.ThpMode.Madvise;

    /// <summary>The IOMMU.</summary>
    public IommuSpec Iommu { get; init; } = new();

    /// <summary>IOMMU groups with their own reserved regions (groups named only by devices are created too).</summary>
    public IReadOnlyList<GroupSpec> IommuGroups { get; init; } = [];

    /// <summary>The devices.</summary>
    public IReadOnlyList<DeviceSpec> Devices { get; init; } = [];

    /// <summary>Policies: machine configuration, never something a user process can change.</summary>
    public MachineSettings Settings { get; init; } = new();

    /// <summary>The embedded default machine (x86_64).</summary>
    public static MachineSpec Default => LoadEmbedded("default.json");

    /// <summary>The embedded ppc64 machine (64 KiB pages).</summary>
    public static MachineSpec Ppc64 => LoadEmbedded("ppc64.json");

    /// <summary>Loads a spec from a JSON file. Throws <see cref="System.IO.InvalidDataException"/> with the reason when it is malformed.</summary>
    public static MachineSpec Load(string path) => Parse(System.IO.File.ReadAllText(path), path);

    /// <summary>Parses a spec from JSON text.</summary>
    public static MachineSpec Parse(string json, string source = "<json>")
    {
        try
        {
            return JsonSerializer.Deserialize<MachineSpec>(json, JsonOptions)
                ?? throw new System.IO.InvalidDataException($"{source}: empty machine spec");
        }
        catch (JsonException e)
        {
            throw new System.IO.InvalidDataException($"{source}: {e.Message}", e);
        }
    }

    /// <summary>The spec as JSON.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    private static MachineSpec LoadEmbedded(string name)
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream($"KernelModel.Specs.{name}")
            ?? throw new InvalidOperationException($"embedded machine spec {name} is missing");
        using var reader = new System.IO.StreamReader(stream);
        return Parse(reader.ReadToEnd(), name);
    }
}

/// <summary>A physical range.</summary>
public sealed record RangeSpec
{
    /// <summary>First address.</summary>
    public ulong Start { get; init; }

    /// <summary>Size in bytes.</summary>
    public ulong Size { get; init; }
}

/// <summary>The IOMMU of the machine.</summary>
public sealed record IommuSpec
{
    /// <summary>Supported IOMMU page sizes (the domain's pgsize_bitmap).</summary>
    public IReadOnlyList<ulong> PageSizes { get; init; } = [4096, 2UL << 20, 1UL << 30];

    /// <summary>IOVA width in bits (the aperture is [0, 2^bits)).</summary>
    public int AddressWidth { get; init; } = 48;

    /// <summary>Reserved regions every group has (the x86 MSI window, for example).</summary>
    public IReadOnlyList<ReservedSpec> ReservedRegions { get; init; } = [];
}

/// <summary>A reserved IOVA region, inclusive end.</summary>
public sealed record ReservedSpec
{
    /// <summary>First IOVA.</summary>
    public ulong Start { get; init; }

    /// <summary>Last IOVA (inclusive).</summary>
    public ulong End { get; init; }

    /// <summary>The region type.</summary>
    public Iommu.ReservedRegionType Type { get; init; } = Iommu.ReservedRegionType.Reserved;
}

/// <summary>An IOMMU group with reserved regions of its own.</summary>
public sealed record GroupSpec
{
    /// <summary>The group number.</summary>
    public int Id { get; init; }

    /// <summary>Extra reserved regions.</summary>
    public IReadOnlyList<ReservedSpec> ReservedRegions { get; init; } = [];
}

/// <summary>A device: its bus, group, MMIO ranges and bus-specific properties.</summary>
public sealed record DeviceSpec
{
    /// <summary>The device name on its bus.</summary>
    public string Name { get; init; } = "";

    /// <summary>The bus type name.</summary>
    public string Bus { get; init; } = "pci";

    /// <summary>The IOMMU group number; null for a device behind no IOMMU.</summary>
    public int? IommuGroup { get; init; }

    /// <summary>The driver bound at boot: a vfio driver plugin's name, or a native driver's (making the group non-viable).</summary>
    public string? Driver { get; init; }

    /// <summary>A one-line description (what lspci would print).</summary>
    public string Description { get; init; } = "";

    /// <summary>The MMIO ranges it decodes.</summary>
    public IReadOnlyList<MmioSpec> Mmio { get; init; } = [];

    /// <summary>Everything the bus plugin reads (config space layout, capabilities, ...).</summary>
    /// <remarks>Absent in the JSON, it stays undefined and is left out of <see cref="MachineSpec.ToJson"/> (an undefined element cannot be written).</remarks>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public JsonElement Properties { get; init; }
}

/// <summary>An MMIO range of a device.</summary>
public sealed record MmioSpec
{
    /// <summary>Its name (e.g. "BAR0").</summary>
    public string Name { get; init; } = "";

    /// <summary>First physical address.</summary>
    public ulong Start { get; init; }

    /// <summary>Size in bytes.</summary>
    public ulong Size { get; init; }
}

/// <summary>Machine policies (configuration of the kernel, not of a process).</summary>
public sealed record MachineSettings
{
    /// <summary>type1: refuse VM_PFNMAP memory that is not an opted-in vfio device's (default on).</summary>
    public bool StrictMmioMaps { get; init; } = true;

    /// <summary>type1: the dma_entry_limit module parameter.</summary>
    public int DmaEntryLimit { get; init; } = 65535;

    /// <summary>vfio-pci: whether the MSI-X table's page may be mmapped (Linux ≥ 4.16 behaviour).</summary>
    public bool MsixMappable { get; init; } = true;
}

/// <summary>Reads sizes and addresses as numbers, hex strings or sizes with binary units.</summary>
internal sealed class SizeConverter : JsonConverter<ulong>
{
    public override ulong Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.Number)
        {
            return reader.GetUInt64();
        }

        var text = reader.GetString() ?? throw new JsonException("expected a size");
        return TryParse(text, out var value) ? value : throw new JsonException($"'{text}' is not a size or address");
    }

    public override void Write(Utf8JsonWriter writer, ulong value, JsonSerializerOptions options) =>
        writer.WriteStringValue(Format(value));

    public static bool TryParse(string text, out ulong value)
    {
        text = text.Trim().Replace("_", "", StringComparison.Ordinal);
        if (text.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
        {
            return ulong.TryParse(text.AsSpan(2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out value);
        }

        var units = new (string Suffix, int Shift)[] { ("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10), ("T", 40), ("G", 30), ("M", 20), ("K", 10) };
        foreach (var (suffix, shift) in units)
        {
            if (text.EndsWith(suffix, StringComparison.OrdinalIgnoreCase)
                && ulong.TryParse(text.AsSpan(0, text.Length - suffix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out var n)
                && n <= ulong.MaxValue >> shift)
            {
                value = n << shift;
                return true;
            }
        }

        return ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value);
    }

    public static string Format(ulong value)
    {
        foreach (var (suffix, shift) in new[] { ("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10) })
        {
            if (value != 0 && (value & ((1UL << shift) - 1)) == 0)
            {
                return $"{value >> shift}{suffix}";
            }
        }

        return $"0x{value:x}";
    }
}
