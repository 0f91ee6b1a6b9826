using KernelModel.Mm;
using KernelModel.Pci.Config;

namespace KernelModel.Pci;

/// <summary>What a BAR register decodes.</summary>
public enum PciBarKind
{
    /// <summary>Unimplemented.</summary>
    None,
    /// <summary>A memory BAR (32 or 64-bit).</summary>
    Memory,
    /// <summary>The upper half of the 64-bit BAR below it.</summary>
    Memory64Upper,
    /// <summary>An I/O port BAR.</summary>
    Io,
}

/// <summary>One of a function's six base address registers and what it decodes (a pci_dev resource).</summary>
public sealed class PciBar
{
    internal PciBar(int index, PciBarKind kind, ulong start = 0, ulong size = 0, bool is64Bit = false, bool prefetchable = false, MmioRegion? region = null)
    {
        Index = index;
        Kind = kind;
        Start = start;
        Size = size;
        Is64Bit = is64Bit;
        Prefetchable = prefetchable;
        Region = region;
        Ports = kind == PciBarKind.Io ? new SparseStore(256) : null;
    }

    /// <summary>The BAR number (0..5).</summary>
    public int Index { get; }

    /// <summary>What it decodes.</summary>
    public PciBarKind Kind { get; }

    /// <summary>pci_resource_start(): the first address (or port) it decodes; 0 when unimplemented.</summary>
    public ulong Start { get; }

    /// <summary>pci_resource_len(): its size; 0 when unimplemented or the upper half of a 64-bit BAR.</summary>
    public ulong Size { get; }

    /// <summary>A 64-bit memory BAR.</summary>
    public bool Is64Bit { get; }

    /// <summary>Prefetchable memory.</summary>
    public bool Prefetchable { get; }

    /// <summary>The BAR's memory: its backing store, reached by CPU mmaps and peer DMA alike.</summary>
    public MmioRegion? Region { get; }

    /// <summary>An I/O BAR's ports (the model has no port address space; only the function reaches them).</summary>
    internal SparseStore? Ports { get; }

    /// <summary>True for a memory BAR.</summary>
    public bool IsMemory => Kind == PciBarKind.Memory;

    /// <summary>True for an I/O BAR.</summary>
    public bool IsIo => Kind == PciBarKind.Io;

    /// <summary>The read-only flag bits of its register.</summary>
    internal uint RegisterFlags => Kind switch
    {
        PciBarKind.Io => (uint)PciBarBits.SpaceIo,
        PciBarKind.Memory => (Is64Bit ? (uint)PciBarBits.MemType64 : 0) | (Prefetchable ? (uint)PciBarBits.Prefetch : 0),
        _ => 0,
    };

    /// <inheritdoc />
    public override string ToString() => Kind switch
    {
        PciBarKind.None => $"BAR{Index}: unimplemented",
        PciBarKind.Memory64Upper => $"BAR{Index}: upper half of BAR{Index - 1}",
        PciBarKind.Io => $"BAR{Index}: I/O ports 0x{Start:x}+0x{Size:x}",
        _ => $"BAR{Index}: memory at 0x{Start:x} ({(Is64Bit ? "64-bit" : "32-bit")}, {(Prefetchable ? "" : "non-")}prefetchable) [size=0x{Size:x}]",
    };
}

/// <summary>The expansion ROM: its BAR and its contents.</summary>
public sealed class PciRom
{
    internal PciRom(ulong start, ulong size)
    {
        Start = start;
        Size = size;
        Contents = new SparseStore(4096);
    }

    /// <summary>The address its BAR decodes.</summary>
    public ulong Start { get; }

    /// <summary>Its size.</summary>
    public ulong Size { get; }

    /// <summary>The ROM image (read only to software; the model fills it at boot).</summary>
    public SparseStore Contents { get; }
}
