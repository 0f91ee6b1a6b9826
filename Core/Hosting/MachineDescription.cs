using System.Globalization;
using System.Text;

namespace KernelModel;

/// <summary>Renders a machine the way a Linux user would look at one: /proc/iomem, lspci and /sys/kernel/iommu_groups.</summary>
public static class MachineDescription
{
    /// <summary>The machine as text.</summary>
    public static string Render(Machine machine)
    {
        var sb = new StringBuilder();
        var spec = machine.Spec;
        var g = machine.Geometry;
        Line(sb, $"machine {spec.Name}: {g.Arch}, {Size(g.PageSize)} pages, PMD {Size(g.PmdSize)}{(g.PudSize != 0 ? $", PUD {Size(g.PudSize)}" : "")}, THP {spec.Thp.ToString().ToLowerInvariant()}");
        Line(sb, $"RAM {Size(machine.Memory.TotalPages << g.PageShift)}, {machine.Memory.FreePages << g.PageShift >> 20} MiB free");
        Line(sb, "");
        Line(sb, "/proc/iomem:");
        var ranges = machine.Memory.Ram.Select(r => (Start: r.Start.Value, Last: r.End - 1, Name: "System RAM"))
            .Concat(machine.Memory.Mmio.Select(m => (Start: m.Start.Value, Last: m.Last, Name: m.Name)))
            .OrderBy(r => r.Start);
        foreach (var (start, last, name) in ranges)
        {
            Line(sb, $"  {start:x8}-{last:x8} : {name} ({Size(last - start + 1)})");
        }

        Line(sb, "");
        Line(sb, "lspci:");
        foreach (var d in machine.Devices)
        {
            var desc = spec.Devices.FirstOrDefault(s => s.Name == d.Name)?.Description ?? "";
            Line(sb, $"  {d.Name} [{d.Bus}] {desc}{(d.DriverName is { } drv ? $" (driver: {drv})" : "")}");
        }

        Line(sb, "");
        var pageSizes = string.Join(' ', Enumerable.Range(0, 64).Where(b => ((machine.IommuPageSizeBitmap >> b) & 1) != 0).Select(b => Size(1UL << b)));
        Line(sb, $"IOMMU: {machine.IoPageTableFormat}, page sizes {pageSizes}, aperture {spec.Iommu.AddressWidth} bits");
        Line(sb, "/sys/kernel/iommu_groups:");
        foreach (var group in machine.IommuGroups)
        {
            Line(sb, $"  {group.Id}/devices: {string.Join(' ', group.Devices.Select(d => d.Name))}");
            foreach (var r in group.ReservedRegions)
            {
                Line(sb, $"  {group.Id}/reserved_regions: {r}");
            }
        }

        return sb.ToString();
    }

    private static void Line(StringBuilder sb, string text) => sb.Append(text).Append('\n');

    /// <summary>A size with a binary unit where it divides evenly.</summary>
    public static string Size(ulong bytes)
    {
        foreach (var (unit, shift) in new[] { ("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10) })
        {
            if (bytes >= 1UL << shift && (bytes & ((1UL << shift) - 1)) == 0)
            {
                return (bytes >> shift).ToString(CultureInfo.InvariantCulture) + " " + unit;
            }
        }

        return bytes.ToString(CultureInfo.InvariantCulture) + " B";
    }
}
