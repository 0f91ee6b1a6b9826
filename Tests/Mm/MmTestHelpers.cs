using KernelModel.Mm;

namespace KernelModel.Tests.Mm;

/// <summary>Sizes and small probes shared by the memory tests.</summary>
internal static class MmTestHelpers
{
    public const ulong K4 = 4UL << 10;
    public const ulong K64 = 64UL << 10;
    public const ulong M1 = 1UL << 20;
    public const ulong M2 = 2UL << 20;
    public const ulong M16 = 16UL << 20;
    public const ulong G1 = 1UL << 30;

    public const Prot Rw = Prot.Read | Prot.Write;
    public const MapFlags AnonPrivate = MapFlags.Anonymous | MapFlags.Private;
    public const MapFlags AnonShared = MapFlags.Anonymous | MapFlags.Shared;

    /// <summary>mmap that must succeed.</summary>
    public static ulong MustMmap(this UserProcess process, ulong length, Prot prot = Rw, MapFlags flags = AnonPrivate, int fd = -1, ulong offset = 0)
    {
        var va = process.Mmap(0, length, prot, flags, fd, offset);
        Assert.True(va > 0, $"mmap returned {va}");
        return (ulong)va;
    }

    /// <summary>Writes <paramref name="data"/> at <paramref name="va"/>; must succeed.</summary>
    public static void MustWrite(this UserProcess process, ulong va, params byte[] data) =>
        Assert.Equal(data.Length, process.WriteMemory(va, data));

    /// <summary>Reads <paramref name="length"/> bytes at <paramref name="va"/>; must succeed.</summary>
    public static byte[] MustRead(this UserProcess process, ulong va, int length)
    {
        var buffer = new byte[length];
        Assert.Equal(length, process.ReadMemory(va, buffer));
        return buffer;
    }

    /// <summary>The leaf mapping <paramref name="va"/> and its level (0 PTE, 1 PMD, 2 PUD); must be present.</summary>
    internal static (Pte Pte, int Level) Leaf(this UserProcess process, ulong va)
    {
        Assert.True(process.Mm.TryGetPte(va, out var pte, out var level), $"nothing mapped at 0x{va:x}");
        return (pte, level);
    }

    /// <summary>The folio mapped at <paramref name="va"/>; must be present.</summary>
    public static Folio FolioAt(this UserProcess process, ulong va) =>
        process.Leaf(va).Pte.Folio ?? throw new Xunit.Sdk.XunitException($"no folio behind 0x{va:x}");

    /// <summary>True when something is mapped at <paramref name="va"/> (no fault).</summary>
    public static bool IsMapped(this UserProcess process, ulong va) => process.Mm.TryGetPte(va, out _, out _);
}
