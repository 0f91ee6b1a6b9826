using System.Text.Json;
using KernelModel.Iommu;
using KernelModel.Mm;

namespace KernelModel;

/// <summary>
/// A device of the machine (struct device): its name on its bus, its IOMMU group, its MMIO
/// ranges, the bus-specific description from the machine spec, and the driver bound to it.
/// </summary>
public sealed class Device
{
    private readonly List<MmioRegion> _mmio = [];

    internal Device(string name, string bus, IommuGroup? group, JsonElement properties)
    {
        Name = name;
        Bus = bus;
        IommuGroup = group;
        Properties = properties;
    }

    /// <summary>dev_name(): e.g. "0000:01:00.0".</summary>
    public string Name { get; }

    /// <summary>The bus type's name ("pci", "platform", "fsl-mc", "mdev").</summary>
    public string Bus { get; }

    /// <summary>The IOMMU group, or null for a device behind no IOMMU.</summary>
    public IommuGroup? IommuGroup { get; }

    /// <summary>The bus-specific part of the machine spec, for the bus plugin.</summary>
    public JsonElement Properties { get; }

    /// <summary>The MMIO ranges the device decodes (BARs, register blocks).</summary>
    public IReadOnlyList<MmioRegion> Mmio => _mmio;

    /// <summary>The name of the bound driver, or null.</summary>
    public string? DriverName { get; internal set; }

    /// <summary>driver_override, as written through sysfs.</summary>
    public string? DriverOverride { get; internal set; }

    /// <summary>The bus's model of the device (a PCI function's config space, ...), set by the bus type at boot.</summary>
    public object? BusData { get; set; }

    /// <summary>Driver data (dev_get_drvdata).</summary>
    public object? DriverData { get; set; }

    internal void AddMmio(MmioRegion region) => _mmio.Add(region);

    /// <inheritdoc />
    public override string ToString() => Name;
}
