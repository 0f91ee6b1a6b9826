using System.Buffers.Binary;
using KernelModel.Vfio;

namespace KernelModel.Tests.Pci;

/// <summary>The capability chain helper bus drivers use for GET_REGION_INFO (vfio_info_cap_add/shift).</summary>
public sealed class VfioInfoCapTests
{
    [Fact]
    public void Add_ThreeCaps_LinksThemInOrderEachEightByteAligned()
    {
        var caps = new VfioInfoCap();

        caps.Add(1, 1, 8);
        caps.Add(2, 1, 20);
        caps.Add(3, 2, 8);

        Assert.Equal(8 + 24 + 8, caps.Size);
        Assert.Equal([(1, 0, 8u), (2, 8, 32u), (3, 32, 0u)], Walk(caps.Buffer.ToArray(), 0, 0));
    }

    [Fact]
    public void Shift_ByTheInfoSize_MakesNextRelativeToTheInfoStruct()
    {
        var caps = new VfioInfoCap();
        caps.Add(1, 1, 8);
        caps.Add(2, 1, 16);

        caps.Shift(32);

        var buffer = new byte[32 + caps.Size];
        caps.Buffer.CopyTo(buffer.AsSpan(32));
        Assert.Equal([(1, 32, 40u), (2, 40, 0u)], Walk(buffer, 32, 0));
    }

    [Fact]
    public void Add_WholeCapability_KeepsItsPayload()
    {
        var caps = new VfioInfoCap();
        var cap = new byte[16];
        BinaryPrimitives.WriteUInt16LittleEndian(cap, 7);
        BinaryPrimitives.WriteUInt16LittleEndian(cap.AsSpan(2), 3);
        BinaryPrimitives.WriteUInt64LittleEndian(cap.AsSpan(8), 0x1122334455667788);

        caps.Add(cap);

        Assert.Equal(cap, caps.Buffer.ToArray());
    }

    [Fact]
    public void Shift_Unaligned_Throws()
    {
        var caps = new VfioInfoCap();
        caps.Add(1, 1, 8);

        Assert.Throws<ArgumentException>(() => caps.Shift(12));
    }

    private static List<(int Id, int At, uint Next)> Walk(byte[] buffer, int first, int bias)
    {
        var list = new List<(int, int, uint)>();
        var at = first;
        while (true)
        {
            var next = BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(at + 4));
            list.Add((BinaryPrimitives.ReadUInt16LittleEndian(buffer.AsSpan(at)), at, next));
            if (next == 0)
            {
                return list;
            }

            at = (int)next - bias;
        }
    }
}
