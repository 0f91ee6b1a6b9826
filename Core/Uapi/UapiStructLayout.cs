namespace KernelModel.Uapi;

/// <summary>An integer constant of linux/vfio.h: its C name, value and the C# type that mirrors its C type.</summary>
public sealed class UapiConstant
{
    internal UapiConstant(string name, long value, Type clrType)
    {
        Name = name;
        Value = value;
        ClrType = clrType;
    }

    /// <summary>The C name, e.g. <c>VFIO_IOMMU_MAP_DMA</c>.</summary>
    public string Name { get; }

    /// <summary>The value.</summary>
    public long Value { get; }

    /// <summary><see cref="int"/> for a C <c>int</c>, <see cref="uint"/> for a C <c>unsigned int</c> (ioctl numbers).</summary>
    public Type ClrType { get; }
}

/// <summary>One member of a uAPI struct's fixed part.</summary>
public sealed class UapiField
{
    internal UapiField(string name, string clrName, int offset, int size)
    {
        Name = name;
        ClrName = clrName;
        Offset = offset;
        Size = size;
    }

    /// <summary>The C member name, e.g. <c>argsz</c>.</summary>
    public string Name { get; }

    /// <summary>The C# field name, e.g. <c>Argsz</c>.</summary>
    public string ClrName { get; }

    /// <summary>C's <c>offsetof</c>.</summary>
    public int Offset { get; }

    /// <summary>C's <c>sizeof</c> of the member.</summary>
    public int Size { get; }
}

/// <summary>The flexible array member that ends a uAPI struct (<c>__u8 data[]</c>); not part of C's <c>sizeof</c>.</summary>
public sealed class UapiFlexibleArray
{
    internal UapiFlexibleArray(string name, int offset, int elementSize, Type elementType)
    {
        Name = name;
        Offset = offset;
        ElementSize = elementSize;
        ElementType = elementType;
    }

    /// <summary>The C member name.</summary>
    public string Name { get; }

    /// <summary>C's <c>offsetof</c>: where the elements start in the user buffer.</summary>
    public int Offset { get; }

    /// <summary>C's <c>sizeof</c> of one element.</summary>
    public int ElementSize { get; }

    /// <summary>The C# type of one element.</summary>
    public Type ElementType { get; }
}

/// <summary>The layout of one <c>struct vfio_*</c>: size and members in declaration order, under their C names.</summary>
public sealed class UapiStructLayout
{
    private readonly Dictionary<string, UapiField> byName;

    internal UapiStructLayout(string name, Type clrType, int size, IReadOnlyList<UapiField> fields, UapiFlexibleArray? flexibleArray)
    {
        Name = name;
        ClrType = clrType;
        Size = size;
        Fields = fields;
        FlexibleArray = flexibleArray;
        byName = fields.ToDictionary(f => f.Name, StringComparer.Ordinal);
        var offsets = new OrderedDictionary<string, int>(StringComparer.Ordinal);
        foreach (var field in fields)
        {
            offsets.Add(field.Name, field.Offset);
        }

        Offsets = new System.Collections.ObjectModel.ReadOnlyDictionary<string, int>(offsets);
    }

    /// <summary>The C struct name without <c>struct</c>, e.g. <c>vfio_iommu_type1_dma_map</c>.</summary>
    public string Name { get; }

    /// <summary>The C# struct that models it.</summary>
    public Type ClrType { get; }

    /// <summary>C's <c>sizeof</c>: the fixed part, tail padding included, flexible array excluded.</summary>
    public int Size { get; }

    /// <summary>The members of the fixed part in declaration order; union members share an offset.</summary>
    public IReadOnlyList<UapiField> Fields { get; }

    /// <summary>C member name → offset, in declaration order.</summary>
    public IReadOnlyDictionary<string, int> Offsets { get; }

    /// <summary>The trailing flexible array member, or null.</summary>
    public UapiFlexibleArray? FlexibleArray { get; }

    /// <summary>Looks a member up by its C name.</summary>
    /// <param name="name">The C member name.</param>
    /// <param name="field">The member, or null.</param>
    /// <returns>Whether the struct has the member in its fixed part.</returns>
    public bool TryGetField(string name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out UapiField? field) =>
        byName.TryGetValue(name, out field);

    /// <summary>
    /// The kernel's <c>offsetofend(struct, member)</c>: the usual <c>minsz</c> of an ioctl, the bytes every caller must pass.
    /// </summary>
    /// <param name="name">The C member name.</param>
    /// <exception cref="KeyNotFoundException">No such member.</exception>
    public int OffsetOfEnd(string name) =>
        byName.TryGetValue(name, out var field)
            ? field.Offset + field.Size
            : throw new KeyNotFoundException($"struct {Name} has no member {name}");
}
