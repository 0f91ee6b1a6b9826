namespace KernelModel;

/// <summary>A page frame number: a physical address shifted right by the machine's page shift.</summary>
public readonly record struct Pfn(ulong Value) : IComparable<Pfn>
{
    /// <summary>The pfn <paramref name="n"/> frames further on.</summary>
    public static Pfn operator +(Pfn pfn, ulong n) => new(pfn.Value + n);

    /// <summary>The number of frames between two pfns.</summary>
    public static ulong operator -(Pfn a, Pfn b) => a.Value - b.Value;

    /// <inheritdoc />
    public int CompareTo(Pfn other) => Value.CompareTo(other.Value);

    /// <summary>Compares two pfns.</summary>
    public static bool operator <(Pfn a, Pfn b) => a.Value < b.Value;

    /// <summary>Compares two pfns.</summary>
    public static bool operator >(Pfn a, Pfn b) => a.Value > b.Value;

    /// <summary>Compares two pfns.</summary>
    public static bool operator <=(Pfn a, Pfn b) => a.Value <= b.Value;

    /// <summary>Compares two pfns.</summary>
    public static bool operator >=(Pfn a, Pfn b) => a.Value >= b.Value;

    /// <inheritdoc />
    public override string ToString() => $"pfn 0x{Value:x}";
}

/// <summary>A physical (CPU or bus) address.</summary>
public readonly record struct PhysAddr(ulong Value)
{
    /// <inheritdoc />
    public override string ToString() => $"0x{Value:x}";
}

/// <summary>An I/O virtual address: what a device puts on the bus, translated by its IOMMU domain.</summary>
public readonly record struct Iova(ulong Value)
{
    /// <inheritdoc />
    public override string ToString() => $"iova 0x{Value:x}";
}

/// <summary>The number of an IOMMU group, as in /sys/kernel/iommu_groups/N and /dev/vfio/N.</summary>
public readonly record struct IommuGroupId(int Value)
{
    /// <inheritdoc />
    public override string ToString() => Value.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
