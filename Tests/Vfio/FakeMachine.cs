namespace KernelModel.Tests.Vfio;

/// <summary>
/// The machine the vfio tests boot: devices on the fake bus in IOMMU groups chosen to exercise
/// the core (one device per group, two in a group, a group made non-viable by a native driver,
/// unbound devices, a device behind no IOMMU, a device on another bus).
/// </summary>
internal static class FakeMachine
{
    /// <summary>fake0 alone in group 10, bound to vfio-fake (opted in to peer-to-peer).</summary>
    public const string Device = "fake0";
    public const int Group = 10;
    public const ulong RegionStart = 0xf000_0000;
    public const ulong RegionSize = 64 << 10;

    /// <summary>fake1.0 and fake1.1 in group 11, both bound to vfio-fake.</summary>
    public const string PairFirst = "fake1.0";
    public const string PairSecond = "fake1.1";
    public const int PairGroup = 11;

    /// <summary>fake2 alone in group 12, bound to vfio-fake-nop2p (not opted in).</summary>
    public const string NoP2pDevice = "fake2";
    public const int NoP2pGroup = 12;

    /// <summary>fake3 (vfio-fake) shares group 13 with nic3, bound to the native e1000e: not viable.</summary>
    public const string NonViableDevice = "fake3";
    public const string NativeDevice = "nic3";
    public const string NativeDriver = "e1000e";
    public const int NonViableGroup = 13;

    /// <summary>fake4 alone in group 14, bound to nothing.</summary>
    public const string UnboundDevice = "fake4";
    public const int UnboundGroup = 14;

    /// <summary>A fake-bus device behind no IOMMU.</summary>
    public const string NoGroupDevice = "fake-nogroup";

    /// <summary>A device on the pci bus, unbound.</summary>
    public const string PciDevice = "0000:05:00.0";

    public const string SpecJson = """
        {
          "name": "vfio-fake-bus",
          "arch": "x86_64",
          "ram": [ { "start": "0x0", "size": "1GiB" } ],
          "iommu": { "pageSizes": [ "4KiB", "2MiB", "1GiB" ], "addressWidth": 48 },
          "devices": [
            { "name": "fake0",   "bus": "fake", "iommuGroup": 10, "driver": "vfio-fake",
              "mmio": [ { "name": "REG", "start": "0xf0000000", "size": "64KiB" } ] },
            { "name": "fake1.0", "bus": "fake", "iommuGroup": 11, "driver": "vfio-fake",
              "mmio": [ { "name": "REG", "start": "0xf0100000", "size": "64KiB" } ] },
            { "name": "fake1.1", "bus": "fake", "iommuGroup": 11, "driver": "vfio-fake",
              "mmio": [ { "name": "REG", "start": "0xf0200000", "size": "64KiB" } ] },
            { "name": "fake2",   "bus": "fake", "iommuGroup": 12, "driver": "vfio-fake-nop2p",
              "mmio": [ { "name": "REG", "start": "0xf0300000", "size": "64KiB" } ] },
            { "name": "fake3",   "bus": "fake", "iommuGroup": 13, "driver": "vfio-fake",
              "mmio": [ { "name": "REG", "start": "0xf0400000", "size": "64KiB" } ] },
            { "name": "nic3",    "bus": "fake", "iommuGroup": 13, "driver": "e1000e",
              "mmio": [ { "name": "REG", "start": "0xf0500000", "size": "64KiB" } ] },
            { "name": "fake4",   "bus": "fake", "iommuGroup": 14,
              "mmio": [ { "name": "REG", "start": "0xf0600000", "size": "64KiB" } ] },
            { "name": "fake-nogroup", "bus": "fake",
              "mmio": [ { "name": "REG", "start": "0xf0700000", "size": "64KiB" } ] },
            { "name": "0000:05:00.0", "bus": "pci", "iommuGroup": 16,
              "mmio": [ { "name": "BAR0", "start": "0xf0800000", "size": "64KiB" } ] }
          ]
        }
        """;

    public static MachineSpec Spec { get; } = MachineSpec.Parse(SpecJson, "FakeMachine");
}
