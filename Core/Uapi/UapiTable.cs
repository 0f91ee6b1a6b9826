using System.Buffers;
using System.Collections.ObjectModel;
using System.Globalization;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;

namespace KernelModel.Uapi;

/// <summary>
/// The uAPI as data, read by reflection from <see cref="VfioUapi"/> and the <see cref="CNameAttribute"/> structs:
/// what <c>kmodel uapi</c> prints and what the conformance tests compare with the C compiler.
/// Everything is keyed by C name and ordered as in linux/vfio.h.
/// </summary>
public static class UapiTable
{
    // Header order; a test checks that every [CName] struct of the assembly is listed.
    private static readonly Type[] StructTypesInHeaderOrder =
    [
        typeof(VfioInfoCapHeader),
        typeof(VfioGroupStatus),
        typeof(VfioDeviceInfo),
        typeof(VfioRegionInfo),
        typeof(VfioRegionSparseMmapArea),
        typeof(VfioRegionInfoCapSparseMmap),
        typeof(VfioRegionInfoCapType),
        typeof(VfioRegionGfxEdid),
        typeof(VfioDeviceMigrationInfo),
        typeof(VfioRegionInfoCapNvlink2Ssatgt),
        typeof(VfioRegionInfoCapNvlink2Lnkspd),
        typeof(VfioIrqInfo),
        typeof(VfioIrqSet),
        typeof(VfioPciDependentDevice),
        typeof(VfioPciHotResetInfo),
        typeof(VfioPciHotReset),
        typeof(VfioDeviceGfxPlaneInfo),
        typeof(VfioDeviceIoeventfd),
        typeof(VfioDeviceFeature),
        typeof(VfioDeviceFeatureMigration),
        typeof(VfioDeviceFeatureMigState),
        typeof(VfioDeviceLowPowerEntryWithWakeup),
        typeof(VfioDeviceFeatureDmaLoggingControl),
        typeof(VfioDeviceFeatureDmaLoggingRange),
        typeof(VfioDeviceFeatureDmaLoggingReport),
        typeof(VfioIommuType1Info),
        typeof(VfioIovaRange),
        typeof(VfioIommuType1InfoCapIovaRange),
        typeof(VfioIommuType1InfoCapMigration),
        typeof(VfioIommuType1InfoDmaAvail),
        typeof(VfioIommuType1DmaMap),
        typeof(VfioBitmap),
        typeof(VfioIommuType1DmaUnmap),
        typeof(VfioIommuType1DirtyBitmap),
        typeof(VfioIommuType1DirtyBitmapGet),
        typeof(VfioIommuSpaprTceDdwInfo),
        typeof(VfioIommuSpaprTceInfo),
        typeof(VfioEehPeErr),
        typeof(VfioEehPeOp),
        typeof(VfioIommuSpaprRegisterMemory),
        typeof(VfioIommuSpaprTceCreate),
        typeof(VfioIommuSpaprTceRemove),
    ];

    /// <summary>Every integer constant with its C# type, in header order.</summary>
    public static IReadOnlyList<UapiConstant> ConstantDefinitions { get; } = BuildConstants();

    /// <summary>C name → value of every integer constant, in header order.</summary>
    public static IReadOnlyDictionary<string, long> Constants { get; } = ToOrdered(ConstantDefinitions, c => c.Name, c => c.Value);

    /// <summary>C name → value of the string constants (<c>VFIO_DEVICE_API_*_STRING</c>); not part of <see cref="Constants"/>.</summary>
    public static IReadOnlyDictionary<string, string> StringConstants { get; } = BuildStringConstants();

    /// <summary>C struct name (without <c>struct</c>) → layout, in header order.</summary>
    public static IReadOnlyDictionary<string, UapiStructLayout> Structs { get; } =
        ToOrdered(StructTypesInHeaderOrder.Select(BuildLayout), s => s.Name, s => s);

    /// <summary>The layout of the struct <typeparamref name="T"/> models.</summary>
    /// <typeparam name="T">A uAPI struct.</typeparam>
    /// <exception cref="ArgumentException"><typeparamref name="T"/> is not a uAPI struct.</exception>
    public static UapiStructLayout LayoutOf<T>()
        where T : unmanaged =>
        typeof(T).GetCustomAttribute<CNameAttribute>() is { } c && Structs.TryGetValue(c.Name, out var layout)
            ? layout
            : throw new ArgumentException($"{typeof(T).Name} is not a uAPI struct", nameof(T));

    /// <summary>
    /// The table as JSON: <c>{"constants": {"VFIO_IOMMU_MAP_DMA": 15217, …}, "structs": {"vfio_iommu_type1_dma_map":
    /// {"size": 32, "fields": {"argsz": 0, …}}, …}}</c>. A struct with a flexible array member also has
    /// <c>"flexible_array": {"name": …, "offset": …, "element_size": …}</c>.
    /// </summary>
    /// <param name="indented">One member per line (the default) or compact.</param>
    public static string ToJson(bool indented = true)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = indented }))
        {
            WriteJson(writer);
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    /// <summary>Writes the object <see cref="ToJson"/> returns to <paramref name="writer"/>.</summary>
    /// <param name="writer">Where to write; positioned where a value may start.</param>
    public static void WriteJson(Utf8JsonWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.WriteStartObject();
        writer.WriteStartObject("constants");
        foreach (var (name, value) in Constants)
        {
            writer.WriteNumber(name, value);
        }

        writer.WriteEndObject();
        writer.WriteStartObject("structs");
        foreach (var layout in Structs.Values)
        {
            writer.WriteStartObject(layout.Name);
            writer.WriteNumber("size", layout.Size);
            writer.WriteStartObject("fields");
            foreach (var field in layout.Fields)
            {
                writer.WriteNumber(field.Name, field.Offset);
            }

            writer.WriteEndObject();
            if (layout.FlexibleArray is { } flex)
            {
                writer.WriteStartObject("flexible_array");
                writer.WriteString("name", flex.Name);
                writer.WriteNumber("offset", flex.Offset);
                writer.WriteNumber("element_size", flex.ElementSize);
                writer.WriteEndObject();
            }

            writer.WriteEndObject();
        }

        writer.WriteEndObject();
        writer.WriteEndObject();
    }

    // Literal fields in declaration order: Roslyn emits field metadata tokens in source order.
    private static IEnumerable<FieldInfo> Literals() =>
        typeof(VfioUapi).GetFields(BindingFlags.Public | BindingFlags.Static)
            .Where(f => f.IsLiteral)
            .OrderBy(f => f.MetadataToken);

    private static ReadOnlyCollection<UapiConstant> BuildConstants() =>
        Literals()
            .Where(f => f.FieldType != typeof(string))
            .Select(f => new UapiConstant(f.Name, Convert.ToInt64(f.GetRawConstantValue(), CultureInfo.InvariantCulture), f.FieldType))
            .ToList()
            .AsReadOnly();

    private static ReadOnlyDictionary<string, string> BuildStringConstants() =>
        ToOrdered(Literals().Where(f => f.FieldType == typeof(string)), f => f.Name, f => (string)f.GetRawConstantValue()!);

    private static UapiStructLayout BuildLayout(Type type)
    {
        string name = CNameOf(type);
        var fields = type.GetFields(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance)
            .OrderBy(f => f.MetadataToken)
            .Select(f => new UapiField(CNameOf(f), f.Name, (int)Marshal.OffsetOf(type, f.Name), Marshal.SizeOf(f.FieldType)))
            .ToList()
            .AsReadOnly();
        var flex = type.GetCustomAttribute<FlexibleArrayAttribute>() is { } f
            ? new UapiFlexibleArray(f.Name, f.Offset, Marshal.SizeOf(f.ElementType), f.ElementType)
            : null;
        return new UapiStructLayout(name, type, Marshal.SizeOf(type), fields, flex);
    }

    private static string CNameOf(MemberInfo member) =>
        member.GetCustomAttribute<CNameAttribute>()?.Name
        ?? throw new InvalidOperationException($"{member.DeclaringType?.Name}.{member.Name} has no [CName]");

    private static ReadOnlyDictionary<string, TValue> ToOrdered<TItem, TValue>(IEnumerable<TItem> items, Func<TItem, string> key, Func<TItem, TValue> value)
    {
        var ordered = new OrderedDictionary<string, TValue>(StringComparer.Ordinal);
        foreach (var item in items)
        {
            ordered.Add(key(item), value(item));
        }

        return new ReadOnlyDictionary<string, TValue>(ordered);
    }
}
