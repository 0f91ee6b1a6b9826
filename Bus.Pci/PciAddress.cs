using System.Globalization;

namespace KernelModel.Pci;

/// <summary>A function's address, "DDDD:BB:SS.F" as pci_name() prints it.</summary>
public readonly record struct PciAddress(ushort Segment, byte Bus, byte Slot, byte Function)
{
    /// <summary>devfn: slot in bits 7..3, function in bits 2..0.</summary>
    public byte Devfn => (byte)((Slot << 3) | Function);

    /// <summary>Parses "DDDD:BB:SS.F" (hex; slot &lt; 32, function &lt; 8).</summary>
    public static bool TryParse(string name, out PciAddress address)
    {
        address = default;
        var parts = name.Split(':');
        if (parts.Length != 3 || parts[0].Length != 4 || parts[1].Length != 2)
        {
            return false;
        }

        var slotFn = parts[2].Split('.');
        if (slotFn.Length != 2 || slotFn[0].Length != 2 || slotFn[1].Length != 1
            || !ushort.TryParse(parts[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var segment)
            || !byte.TryParse(parts[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var bus)
            || !byte.TryParse(slotFn[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var slot)
            || !byte.TryParse(slotFn[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var function)
            || slot >= 32 || function >= 8)
        {
            return false;
        }

        address = new PciAddress(segment, bus, slot, function);
        return true;
    }

    /// <inheritdoc />
    public override string ToString() => $"{Segment:x4}:{Bus:x2}:{Slot:x2}.{Function:x1}";
}
