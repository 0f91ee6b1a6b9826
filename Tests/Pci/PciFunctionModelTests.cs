using System.IO;
using System.Text.Json;
using KernelModel.Kernel;
using KernelModel.Pci;
using KernelModel.Pci.Config;
using KernelModel.Pci.Irq;
using KernelModel.Tests.Hosting;

namespace KernelModel.Tests.Pci;

/// <summary>The PCI device model the bus type builds from the machine spec, before any driver.</summary>
public sealed class PciFunctionModelTests : MachineTestBase
{
    [Fact]
    public void Boot_Default_EveryPciDeviceHasAFunctionAtItsAddress()
    {
        var machine = Boot();

        var functions = machine.Devices.Where(d => d.Bus == "pci").Select(d => (PciFunction)d.BusData!).ToList();

        Assert.Equal(["0000:01:00.0", "0000:02:00.0", "0000:03:00.0", "0000:03:00.1"], functions.Select(f => f.Address.ToString()));
        Assert.Equal([1, 1, 2], PciHost.Of(machine).Buses.Select(b => b.Functions.Count));
    }

    [Fact]
    public void Boot_Default_GpuBar2Is64BitPrefetchableAndTakesBar3()
    {
        var gpu = Function(Boot(), PciSut.Gpu);

        Assert.Equal(PciBarKind.Memory, gpu.Bars[2].Kind);
        Assert.True(gpu.Bars[2].Is64Bit);
        Assert.True(gpu.Bars[2].Prefetchable);
        Assert.Equal(32UL << 30, gpu.Bars[2].Size);
        Assert.Equal(PciBarKind.Memory64Upper, gpu.Bars[3].Kind);
        Assert.False(gpu.Bars[0].Is64Bit);
        Assert.NotNull(gpu.Rom);
    }

    [Fact]
    public void Hardware_AllOnesToBar_ReadsBackTheSizeMask()
    {
        var nic = Function(Boot(), PciSut.Nic);

        nic.WriteConfig(0x10, [0xff, 0xff, 0xff, 0xff]);

        Assert.Equal(0xffff0000u, nic.ReadConfigDword(0x10));
    }

    [Fact]
    public void Hardware_FlrWithoutRestore_LeavesBarsUnassignedAndDecodeOff()
    {
        var nic = Function(Boot(), PciSut.Nic);
        nic.EnableDevice();

        nic.WriteConfigWord(nic.ExpCap + (int)PciExpOffset.DevCtl, (ushort)PciExpDevCtl.BcrFlr);

        Assert.Equal(0u, nic.ReadConfigDword(0x10));
        Assert.False(nic.MemoryEnabled);
        Assert.Equal(1, nic.FunctionResets);
    }

    [Fact]
    public void TryResetFunction_SavesAndRestoresAroundTheReset()
    {
        var nic = Function(Boot(), PciSut.Nic);
        nic.EnableDevice();

        Assert.True(nic.TryResetFunction().IsOk);

        Assert.Equal(0xfb000000u, nic.ReadConfigDword(0x10));
        Assert.True(nic.MemoryEnabled);
    }

    [Fact]
    public void TryResetFunction_SharedBusWithoutFlr_ReturnsEnotty()
    {
        var fn0 = Function(Boot(), PciSut.Fn0);

        Assert.False(fn0.CanResetFunction);
        Assert.Equal(Errno.ENOTTY, fn0.TryResetFunction().Error);
    }

    [Fact]
    public void RaiseInterrupt_NothingEnabled_IsDisabledOrUnhandled()
    {
        var nic = Function(Boot(), PciSut.Nic);

        Assert.Equal(PciInterruptResult.Disabled, nic.RaiseInterrupt(PciIrqType.Msix, 0));
        Assert.Equal(PciInterruptResult.Disabled, nic.RaiseInterrupt(PciIrqType.Msi, 0));
        Assert.Equal(PciInterruptResult.Spurious, nic.RaiseInterrupt(PciIrqType.Intx));
        Assert.True(nic.IntxAsserted);
    }

    [Fact]
    public void AllocIrqVectors_MoreThanTheTable_ReturnsEnospc()
    {
        var nic = Function(Boot(), PciSut.Nic);

        Assert.Equal(Errno.ENOSPC, nic.AllocIrqVectors(PciIrqType.Msix, 65).Error);
        Assert.True(nic.AllocIrqVectors(PciIrqType.Msix, 64).IsOk);
        Assert.Equal(Errno.EINVAL, nic.AllocIrqVectors(PciIrqType.Msi, 1).Error);
    }

    public static TheoryData<string, string, ulong, string> BadDevices => new()
    {
        { "not a PCI address", "nic0", 0x1000, "{}" },
        { "BAR size not a power of two", "0000:04:00.0", 0x3000, "{}" },
        { "64-bit BAR5", "0000:04:00.0", 0x1000, """{ "bars": { "BAR5": { "is64Bit": true } } }""" },
        { "MSI-X table beyond its BAR", "0000:04:00.0", 0x1000, """{ "msix": { "vectors": 8, "tableBar": 0, "tableOffset": "0xff8" } }""" },
        { "MSI-X table in a missing BAR", "0000:04:00.0", 0x1000, """{ "msix": { "vectors": 8, "tableBar": 1 } }""" },
        { "MSI vectors not a power of two", "0000:04:00.0", 0x1000, """{ "msi": { "vectors": 3 } }""" },
        { "vendor ID wider than 16 bits", "0000:04:00.0", 0x1000, """{ "vendorId": "0x10000" }""" },
        { "unknown property", "0000:04:00.0", 0x1000, """{ "flr": true }""" },
        { "attributes for a BAR with no MMIO", "0000:04:00.0", 0x1000, """{ "bars": { "BAR1": { "prefetchable": true } } }""" },
        { "I/O BAR on a memory BAR's register", "0000:04:00.0", 0x1000, """{ "ioBar": { "index": 0, "start": "0x1000", "size": 16 } }""" },
        { "interrupt pin 5", "0000:04:00.0", 0x1000, """{ "interruptPin": 5 }""" },
    };

    [Theory]
    [MemberData(nameof(BadDevices))]
    public void Boot_PciPropertiesThatDescribeNoFunction_ThrowInvalidData(string what, string name, ulong size, string properties)
    {
        var spec = MachineSpec.Default;
        var device = new DeviceSpec
        {
            Name = name,
            Bus = "pci",
            IommuGroup = 4,
            Mmio = [new MmioSpec { Name = "BAR0", Start = 0xfe000000, Size = size }],
            Properties = JsonDocument.Parse(properties).RootElement,
        };

        var e = Assert.Throws<InvalidDataException>(() => Machine.Boot(spec with { Devices = [.. spec.Devices, device] }));
        Assert.False(string.IsNullOrEmpty(e.Message), what);
    }

    [Fact]
    public void Boot_DeviceWithoutProperties_GetsDefaults()
    {
        var spec = MachineSpec.Default;
        var device = new DeviceSpec { Name = "0000:04:00.0", Bus = "pci", IommuGroup = 4, Mmio = [new MmioSpec { Name = "BAR0", Start = 0xfe000000, Size = 0x1000 }] };

        var fn = Function(Boot(spec with { Devices = [.. spec.Devices, device] }), "0000:04:00.0");

        Assert.Equal(0x1b36, fn.ReadConfigWord(0));
        Assert.Equal(256, fn.Config.Size);
        Assert.Equal(0, fn.ReadConfigWord((int)PciConfigOffset.Status) & (int)PciStatus.CapList);
    }

    [Fact]
    public void PciAddress_ParseAndFormat_RoundTrip()
    {
        Assert.True(PciAddress.TryParse("0001:0a:1f.7", out var a));
        Assert.Equal(new PciAddress(1, 0x0a, 0x1f, 7), a);
        Assert.Equal(0xff, a.Devfn);
        Assert.Equal("0001:0a:1f.7", a.ToString());
        Assert.False(PciAddress.TryParse("0000:00:20.0", out _));
        Assert.False(PciAddress.TryParse("0000:00:00.8", out _));
    }

    private static PciFunction Function(Machine machine, string name) =>
        machine.TryGetDevice(name, out var d) && PciHost.TryGetFunction(d, out var f) ? f : throw new InvalidOperationException(name);
}
