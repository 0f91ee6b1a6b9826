using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace KernelModel.Pci.Config;

/// <summary>
/// The "properties" of a PCI device in a machine spec. Every field is optional; numbers may be JSON
/// numbers, hex strings ("0x8086") or sizes with binary units ("64KiB"). BAR memory itself comes
/// from the device's "mmio" entries named "BAR0".."BAR5"; this only adds their attributes.
/// <code>
/// "properties": {
///   "vendorId": "0x1b36", "deviceId": "0x1001", "classCode": "0x020000", "revision": 1,
///   "subsystemVendorId": "0x1b36", "subsystemId": "0x0001",
///   "bars": { "BAR2": { "is64Bit": true, "prefetchable": true } },
///   "ioBar": { "index": 4, "start": "0xe000", "size": 32 },
///   "rom": { "start": "0xfd200000", "size": "128KiB" },
///   "interruptPin": 1,
///   "pm": { "noSoftReset": true },
///   "msi": { "vectors": 4, "is64Bit": true, "perVectorMask": false },
///   "msix": { "vectors": 64, "tableBar": 0, "tableOffset": "0x3000", "pbaBar": 0, "pbaOffset": "0x3800" },
///   "pcie": { "flr": true },
///   "busReset": true
/// }
/// </code>
/// </summary>
public sealed record PciFunctionSpec
{
    internal static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        Converters = { new NumberConverter() },
    };

    /// <summary>PCI_VENDOR_ID (default 0x1b36).</summary>
    public ulong VendorId { get; init; } = 0x1b36;

    /// <summary>PCI_DEVICE_ID.</summary>
    public ulong DeviceId { get; init; }

    /// <summary>The 24-bit class code: class, subclass, programming interface (default 0xff0000, unassigned).</summary>
    public ulong ClassCode { get; init; } = 0xff0000;

    /// <summary>PCI_REVISION_ID.</summary>
    public ulong Revision { get; init; }

    /// <summary>PCI_SUBSYSTEM_VENDOR_ID (default: the vendor).</summary>
    public ulong? SubsystemVendorId { get; init; }

    /// <summary>PCI_SUBSYSTEM_ID.</summary>
    public ulong SubsystemId { get; init; }

    /// <summary>Attributes of memory BARs, by MMIO name ("BAR0".."BAR5").</summary>
    public IReadOnlyDictionary<string, PciBarSpec> Bars { get; init; } = new Dictionary<string, PciBarSpec>();

    /// <summary>An I/O port BAR, if any.</summary>
    public PciIoBarSpec? IoBar { get; init; }

    /// <summary>The expansion ROM, if any.</summary>
    public PciRomSpec? Rom { get; init; }

    /// <summary>PCI_INTERRUPT_PIN: 0 none, 1..4 INTA..INTD (default 1).</summary>
    public ulong InterruptPin { get; init; } = 1;

    /// <summary>The power management capability, if any.</summary>
    public PciPmSpec? Pm { get; init; }

    /// <summary>The MSI capability, if any.</summary>
    public PciMsiSpec? Msi { get; init; }

    /// <summary>The MSI-X capability, if any.</summary>
    public PciMsixSpec? Msix { get; init; }

    /// <summary>The PCI Express capability, if any (a PCIe function has 4 KiB of config space).</summary>
    public PciExpSpec? Pcie { get; init; }

    /// <summary>Whether the slot or bus above the function can be reset (secondary bus reset); default true.</summary>
    public bool BusReset { get; init; } = true;

    /// <summary>Parses the properties element (undefined or null means all defaults).</summary>
    public static PciFunctionSpec Parse(JsonElement properties) =>
        properties.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null
            ? new PciFunctionSpec()
            : properties.Deserialize<PciFunctionSpec>(JsonOptions) ?? new PciFunctionSpec();

    /// <summary>Reads numbers as JSON numbers, hex strings or sizes with binary units.</summary>
    private sealed class NumberConverter : JsonConverter<ulong>
    {
        public override ulong Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
        {
            if (reader.TokenType == JsonTokenType.Number)
            {
                return reader.GetUInt64();
            }

            var text = (reader.GetString() ?? throw new JsonException("expected a number")).Trim().Replace("_", "", StringComparison.Ordinal);
            if (text.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
                && ulong.TryParse(text.AsSpan(2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var hex))
            {
                return hex;
            }

            foreach (var (suffix, shift) in new[] { ("GiB", 30), ("MiB", 20), ("KiB", 10) })
            {
                if (text.EndsWith(suffix, StringComparison.OrdinalIgnoreCase)
                    && ulong.TryParse(text.AsSpan(0, text.Length - suffix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out var n)
                    && n <= ulong.MaxValue >> shift)
                {
                    return n << shift;
                }
            }

            return ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value)
                ? value
                : throw new JsonException($"'{text}' is not a number");
        }

        public override void Write(Utf8JsonWriter writer, ulong value, JsonSerializerOptions options) => writer.WriteNumberValue(value);
    }
}

/// <summary>Attributes of a memory BAR.</summary>
public sealed record PciBarSpec
{
    /// <summary>A 64-bit BAR (it uses the next BAR register too). Default: true when any of it lies above 4 GiB.</summary>
    public bool? Is64Bit { get; init; }

    /// <summary>Prefetchable. Default: true when the BAR lies above 4 GiB (only a prefetchable window reaches there).</summary>
    public bool? Prefetchable { get; init; }
}

/// <summary>An I/O port BAR.</summary>
public sealed record PciIoBarSpec
{
    /// <summary>Its BAR register (0..5).</summary>
    public ulong Index { get; init; }

    /// <summary>The first port.</summary>
    public ulong Start { get; init; }

    /// <summary>The size in ports (a power of two, at least 4).</summary>
    public ulong Size { get; init; }
}

/// <summary>The expansion ROM.</summary>
public sealed record PciRomSpec
{
    /// <summary>The address its BAR decodes (2 KiB aligned).</summary>
    public ulong Start { get; init; }

    /// <summary>The size (a power of two, at least 2 KiB).</summary>
    public ulong Size { get; init; }
}

/// <summary>The power management capability.</summary>
public sealed record PciPmSpec
{
    /// <summary>PCI_PM_CTRL_NO_SOFT_RESET: D3hot→D0 keeps the configuration (default true).</summary>
    public bool NoSoftReset { get; init; } = true;
}

/// <summary>The MSI capability.</summary>
public sealed record PciMsiSpec
{
    /// <summary>Vectors the function can send: 1, 2, 4, 8, 16 or 32 (default 1).</summary>
    public ulong Vectors { get; init; } = 1;

    /// <summary>64-bit message address (default true).</summary>
    public bool Is64Bit { get; init; } = true;

    /// <summary>Per-vector masking (default false).</summary>
    public bool PerVectorMask { get; init; }
}

/// <summary>The MSI-X capability: the table and the PBA live in BAR memory.</summary>
public sealed record PciMsixSpec
{
    /// <summary>Table size: 1..2048 vectors.</summary>
    public ulong Vectors { get; init; } = 1;

    /// <summary>The BAR holding the table.</summary>
    public ulong TableBar { get; init; }

    /// <summary>The table's offset in that BAR (8-byte aligned).</summary>
    public ulong TableOffset { get; init; }

    /// <summary>The BAR holding the pending bit array (default: the table's).</summary>
    public ulong? PbaBar { get; init; }

    /// <summary>The PBA's offset in that BAR (default: right after the table, 8-byte aligned).</summary>
    public ulong? PbaOffset { get; init; }
}

/// <summary>The PCI Express capability (an endpoint).</summary>
public sealed record PciExpSpec
{
    /// <summary>Function level reset (PCI_EXP_DEVCAP_FLR), default true.</summary>
    public bool Flr { get; init; } = true;
}
