using System.Runtime.CompilerServices;
using KernelModel.Kernel;
using KernelModel.Pci.Irq;

namespace KernelModel.Pci;

/// <summary>
/// A PCI bus below a bridge: the functions a secondary bus reset resets together. In the model
/// every bus has one slot, so a slot reset and a bus reset affect the same functions.
/// </summary>
public sealed class PciBus
{
    private readonly List<PciFunction> _functions = [];

    internal PciBus(PciHost host, ushort segment, byte number)
    {
        Host = host;
        Segment = segment;
        Number = number;
    }

    /// <summary>The machine's PCI host.</summary>
    public PciHost Host { get; }

    /// <summary>The PCI segment (domain).</summary>
    public ushort Segment { get; }

    /// <summary>The bus number.</summary>
    public byte Number { get; }

    /// <summary>
    /// The lock of the set of devices a reset of this bus affects (vfio's dev_set->lock): held
    /// across a hot reset; taken before any device's memory_lock.
    /// </summary>
    public Lock ResetLock { get; } = new();

    /// <summary>The functions on the bus, by devfn.</summary>
    public IReadOnlyList<PciFunction> Functions
    {
        get
        {
            lock (_functions)
            {
                return [.. _functions];
            }
        }
    }

    /// <summary>pci_probe_reset_bus(): whether the platform can reset this bus (every function's spec must allow it).</summary>
    public bool CanReset => Functions.All(f => f.Spec.BusReset);

    /// <summary>
    /// pci_reset_bus(): a secondary bus reset. Every function's state is saved, every function is
    /// reset, and every function's state is restored. ENOTTY when the bus cannot be reset.
    /// </summary>
    public KResult Reset()
    {
        if (!CanReset)
        {
            return Errno.ENOTTY;
        }

        var functions = Functions;
        var saved = functions.Select(f => f.SaveState()).ToList();
        foreach (var f in functions)
        {
            f.WriteConfigWord((int)Config.PciConfigOffset.Command, (ushort)Config.PciCommand.IntxDisable);
        }

        foreach (var f in functions)
        {
            f.BusReset();
        }

        for (var i = 0; i < functions.Count; i++)
        {
            functions[i].RestoreState(saved[i]);
        }

        return KResult.Ok;
    }

    internal void Add(PciFunction function)
    {
        lock (_functions)
        {
            _functions.Add(function);
            _functions.Sort((a, b) => a.Address.Devfn.CompareTo(b.Address.Devfn));
        }
    }

    /// <inheritdoc />
    public override string ToString() => $"pci bus {Segment:x4}:{Number:x2}";
}

/// <summary>The PCI host of one machine: its buses and its interrupt controller.</summary>
public sealed class PciHost
{
    private static readonly ConditionalWeakTable<Machine, PciHost> s_hosts = new();
    private readonly Dictionary<(ushort, byte), PciBus> _buses = [];

    private PciHost(Machine machine) => Machine = machine;

    /// <summary>The machine.</summary>
    public Machine Machine { get; }

    /// <summary>The interrupt controller PCI functions signal.</summary>
    public InterruptController Interrupts { get; } = new();

    /// <summary>The buses, in order.</summary>
    public IReadOnlyList<PciBus> Buses
    {
        get
        {
            lock (_buses)
            {
                return [.. _buses.OrderBy(b => b.Key).Select(b => b.Value)];
            }
        }
    }

    /// <summary>The PCI host of <paramref name="machine"/> (created on first use).</summary>
    public static PciHost Of(Machine machine) => s_hosts.GetValue(machine, m => new PciHost(m));

    /// <summary>The PCI function that <paramref name="device"/> is, if it is one.</summary>
    public static bool TryGetFunction(Device device, out PciFunction function)
    {
        function = (device.BusData as PciFunction)!;
        return function is not null;
    }

    internal PciBus GetBus(ushort segment, byte number)
    {
        lock (_buses)
        {
            if (!_buses.TryGetValue((segment, number), out var bus))
            {
                bus = new PciBus(this, segment, number);
                _buses[(segment, number)] = bus;
            }

            return bus;
        }
    }
}
