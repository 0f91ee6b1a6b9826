namespace KernelModel.Uapi;

/// <summary>
/// The C name of a uAPI struct or struct member, as spelled in linux/vfio.h.
/// The C# types use .NET casing (<c>VfioIommuType1DmaMap.Vaddr</c>); this attribute maps them back
/// (<c>struct vfio_iommu_type1_dma_map</c>, <c>vaddr</c>) so <see cref="UapiTable"/> can be built by reflection
/// and checked against the C compiler.
/// </summary>
[AttributeUsage(AttributeTargets.Struct | AttributeTargets.Field, AllowMultiple = false, Inherited = false)]
public sealed class CNameAttribute : Attribute
{
    /// <summary>Names the C struct (without the <c>struct</c> keyword) or member.</summary>
    /// <param name="name">The C spelling, e.g. <c>vfio_irq_set</c> or <c>argsz</c>.</param>
    public CNameAttribute(string name) => Name = name;

    /// <summary>The C spelling.</summary>
    public string Name { get; }
}

/// <summary>
/// Declares the C flexible array member that ends a struct (<c>__u8 data[];</c>). C's <c>sizeof</c> excludes it, so
/// the C# struct models only the fixed part and the array's elements start at <see cref="Offset"/> in the user buffer;
/// <see cref="UapiStruct.Trailing{T}(Span{byte})"/> returns them.
/// </summary>
[AttributeUsage(AttributeTargets.Struct, AllowMultiple = false, Inherited = false)]
public sealed class FlexibleArrayAttribute : Attribute
{
    /// <summary>Declares the flexible array member.</summary>
    /// <param name="name">The C member name, e.g. <c>data</c>.</param>
    /// <param name="elementType">The C# type of one element (e.g. <see cref="byte"/>, <see cref="VfioIovaRange"/>).</param>
    /// <param name="offset">C's <c>offsetof</c> of the member: where the trailing elements start.</param>
    public FlexibleArrayAttribute(string name, Type elementType, int offset)
    {
        Name = name;
        ElementType = elementType;
        Offset = offset;
    }

    /// <summary>The C member name.</summary>
    public string Name { get; }

    /// <summary>The C# type of one element.</summary>
    public Type ElementType { get; }

    /// <summary>C's <c>offsetof</c> of the member.</summary>
    public int Offset { get; }
}
