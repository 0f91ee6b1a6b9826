using System.Buffers.Binary;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text.Json;
using KernelModel.Uapi;

namespace KernelModel.Tests.Uapi;

/// <summary>The table, its JSON, and the span helpers; none of this needs a C compiler.</summary>
public class UapiTableTests
{
    public static TheoryData<string, long> KnownIoctls => new()
    {
        // _IO(';', 100 + n) worked by hand: 0x3B00 | (100 + n).
        { nameof(VfioUapi.VFIO_GET_API_VERSION), 0x3B64 },
        { nameof(VfioUapi.VFIO_GROUP_GET_DEVICE_FD), 0x3B6A },
        { nameof(VfioUapi.VFIO_DEVICE_SET_IRQS), 0x3B6E },
        { nameof(VfioUapi.VFIO_IOMMU_MAP_DMA), 15217 },
        { nameof(VfioUapi.VFIO_IOMMU_UNMAP_DMA), 0x3B72 },
        { nameof(VfioUapi.VFIO_EEH_PE_OP), 0x3B79 },
    };

    [Theory]
    [MemberData(nameof(KnownIoctls))]
    public void Constants_IoctlNumber_IsIoOfVfioTypeAndBase(string name, long expected)
    {
        Assert.Equal(expected, UapiTable.Constants[name]);
    }

    [Fact]
    public void ToJson_Indented_ParsesBackWithKnownValues()
    {
        using var json = JsonDocument.Parse(UapiTable.ToJson());

        var root = json.RootElement;
        Assert.Equal(["constants", "structs"], root.EnumerateObject().Select(p => p.Name));
        var constants = root.GetProperty("constants");
        Assert.Equal(UapiTable.Constants.Count, constants.EnumerateObject().Count());
        Assert.Equal(15217, constants.GetProperty("VFIO_IOMMU_MAP_DMA").GetInt64());
        Assert.Equal(59, constants.GetProperty("VFIO_TYPE").GetInt64());
        Assert.Equal(int.MinValue, constants.GetProperty("VFIO_REGION_TYPE_PCI_VENDOR_TYPE").GetInt64());
        var dmaMap = root.GetProperty("structs").GetProperty("vfio_iommu_type1_dma_map");
        Assert.Equal(32, dmaMap.GetProperty("size").GetInt32());
        Assert.Equal(
            [("argsz", 0), ("flags", 4), ("vaddr", 8), ("iova", 16), ("size", 24)],
            dmaMap.GetProperty("fields").EnumerateObject().Select(p => (p.Name, p.Value.GetInt32())));
        var irqSetFlex = root.GetProperty("structs").GetProperty("vfio_irq_set").GetProperty("flexible_array");
        Assert.Equal("data", irqSetFlex.GetProperty("name").GetString());
        Assert.Equal(20, irqSetFlex.GetProperty("offset").GetInt32());
        Assert.Equal(1, irqSetFlex.GetProperty("element_size").GetInt32());
    }

    [Fact]
    public void ToJson_Compact_IsOneLineWithSameContent()
    {
        string compact = UapiTable.ToJson(indented: false);

        Assert.DoesNotContain('\n', compact);
        using var a = JsonDocument.Parse(compact);
        using var b = JsonDocument.Parse(UapiTable.ToJson(indented: true));
        Assert.True(JsonElement.DeepEquals(a.RootElement, b.RootElement));
    }

    [Fact]
    public void Structs_EveryCNameStructInAssembly_IsListed()
    {
        var declared = typeof(UapiTable).Assembly.GetTypes()
            .Where(t => t.IsValueType && t.GetCustomAttribute<CNameAttribute>() is not null)
            .Select(t => t.GetCustomAttribute<CNameAttribute>()!.Name);

        Assert.Empty(declared.Except(UapiTable.Structs.Keys));
    }

    [Fact]
    public void Structs_ManagedSize_EqualsTableSize()
    {
        // MemoryMarshal reads Unsafe.SizeOf<T>() bytes; it must be C's sizeof, which the table (Marshal.SizeOf) is checked against.
        var sizeOf = typeof(Unsafe).GetMethod(nameof(Unsafe.SizeOf))!;

        var wrong = UapiTable.Structs.Values
            .Where(s => (int)sizeOf.MakeGenericMethod(s.ClrType).Invoke(null, null)! != s.Size)
            .Select(s => s.Name);

        Assert.Empty(wrong);
    }

    [Fact]
    public void Structs_FlexibleArrayOffset_EqualsSizeSoTrailingIsRight()
    {
        var wrong = UapiTable.Structs.Values
            .Where(s => s.FlexibleArray is { } f && f.Offset != s.Size)
            .Select(s => s.Name);

        Assert.Empty(wrong);
    }

    [Fact]
    public void OffsetOfEnd_Type1InfoIovaPgsizes_IsKernelMinsz()
    {
        var layout = UapiTable.LayoutOf<VfioIommuType1Info>();

        Assert.Equal(16, layout.OffsetOfEnd("iova_pgsizes"));
        Assert.Equal(24, layout.Size);
    }

    [Fact]
    public void TryRead_DmaMapBytesAtCOffsets_ReadsFields()
    {
        var bytes = new byte[32];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(0), 32);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(4), VfioUapi.VFIO_DMA_MAP_FLAG_READ | VfioUapi.VFIO_DMA_MAP_FLAG_WRITE);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(8), 0x7f00_0000_0000);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(16), 0x1_0000_0000);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(24), 0x20_0000);

        Assert.True(UapiStruct.TryRead(bytes, out VfioIommuType1DmaMap map));

        Assert.Equal((32u, 3u, 0x7f00_0000_0000ul, 0x1_0000_0000ul, 0x20_0000ul), (map.Argsz, map.Flags, map.Vaddr, map.Iova, map.Size));
    }

    [Fact]
    public void TryRead_ShortBuffer_ReturnsFalse()
    {
        Assert.False(UapiStruct.TryRead(new byte[31], out VfioIommuType1DmaMap _));
    }

    [Fact]
    public void TryWrite_UnalignedBuffer_RoundTrips()
    {
        var bytes = new byte[1 + 40];
        var op = new VfioEehPeOp { Argsz = 40, Op = VfioUapi.VFIO_EEH_PE_INJECT_ERR, Err = new VfioEehPeErr { Type = 1, Addr = 0xdead_beef, Mask = ~0ul } };

        Assert.True(UapiStruct.TryWrite(bytes.AsSpan(1), in op));

        Assert.Equal(0xdead_beeful, BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(1 + 24)));
        Assert.True(UapiStruct.TryRead(bytes.AsSpan(1), out VfioEehPeOp back));
        Assert.Equal(op.Err.Mask, back.Err.Mask);
    }

    [Fact]
    public void TryCopyFromUser_LongerArg_CopiesOnlyMinsz()
    {
        var bytes = new byte[24];
        bytes.AsSpan().Fill(0xff);

        Assert.True(UapiStruct.TryCopyFromUser(bytes, minsz: 16, out VfioIommuType1Info info));

        Assert.Equal(uint.MaxValue, info.Argsz);
        Assert.Equal(0u, info.CapOffset);
    }

    [Fact]
    public void TryCopyFromUser_ArgShorterThanMinsz_ReturnsFalse()
    {
        Assert.False(UapiStruct.TryCopyFromUser(new byte[15], minsz: 16, out VfioIommuType1Info _));
    }

    [Fact]
    public void TryCopyToUser_Count_WritesOnlyThatPrefix()
    {
        var bytes = new byte[24];
        var info = new VfioIommuType1Info { Argsz = 24, Flags = 1, IovaPgsizes = 0x1000, CapOffset = 0xAAAA };

        Assert.True(UapiStruct.TryCopyToUser(bytes, in info, count: 16));

        Assert.Equal(0x1000ul, BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(8)));
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(16)));
    }

    [Fact]
    public void Trailing_IrqSetWithEventfds_StartsAtDataOffset()
    {
        var bytes = new byte[20 + (2 * sizeof(int))];
        var set = new VfioIrqSet { Argsz = (uint)bytes.Length, Flags = VfioUapi.VFIO_IRQ_SET_DATA_EVENTFD | VfioUapi.VFIO_IRQ_SET_ACTION_TRIGGER, Count = 2 };
        UapiStruct.Write(bytes, in set);

        Assert.True(UapiStruct.TryWriteElement(UapiStruct.Trailing<VfioIrqSet>(bytes.AsSpan()), 1, -1));

        Assert.Equal(-1, BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(24)));
        Assert.True(UapiStruct.TryReadElement(UapiStruct.Trailing<VfioIrqSet>((ReadOnlySpan<byte>)bytes), 1, out int fd));
        Assert.Equal(-1, fd);
        Assert.False(UapiStruct.TryReadElement(UapiStruct.Trailing<VfioIrqSet>((ReadOnlySpan<byte>)bytes), 2, out int _));
    }

    [Fact]
    public void GfxPlaneInfo_UnionMembers_ShareOffset()
    {
        var layout = UapiTable.LayoutOf<VfioDeviceGfxPlaneInfo>();

        Assert.Equal(layout.Offsets["region_index"], layout.Offsets["dmabuf_id"]);
        Assert.Equal(Marshal.SizeOf<VfioDeviceGfxPlaneInfo>(), layout.Size);
    }
}
