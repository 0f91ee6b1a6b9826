using System.Text.Json;
using KernelModel.Kernel;
using KernelModel.Pci.Config;
using KernelModel.Vfio;

namespace KernelModel.Pci;

/// <summary>
/// The "pci" bus type: builds a <see cref="PciFunction"/> for every device on the bus from its
/// name ("DDDD:BB:SS.F"), its MMIO ranges (the BARs) and its properties
/// (<see cref="PciFunctionSpec"/>), and keeps it in <see cref="Device.BusData"/>.
/// </summary>
[BusType("pci")]
public sealed class PciBusType : IBusType
{
    /// <summary>
    /// Builds the function. A name that is not a PCI address, or properties that cannot describe a
    /// function, make the spec invalid: <see cref="System.IO.InvalidDataException"/> with the reason.
    /// </summary>
    public KResult Setup(Machine machine, Device device)
    {
        if (!PciAddress.TryParse(device.Name, out var address))
        {
            throw new System.IO.InvalidDataException($"{machine.Spec.Name}: PCI device '{device.Name}' is not named DDDD:BB:SS.F");
        }

        if (device.BusData is not null)
        {
            return Errno.EBUSY;
        }

        try
        {
            var spec = PciFunctionSpec.Parse(device.Properties);
            var host = PciHost.Of(machine);
            var bus = host.GetBus(address.Segment, address.Bus);
            if (bus.Functions.Any(f => f.Address == address))
            {
                return Errno.EEXIST;
            }

            // Function 0 of a slot with more functions says so in its header type.
            var multiFunction = address.Function == 0 && machine.Devices.Any(d => d != device && d.Bus == device.Bus
                && PciAddress.TryParse(d.Name, out var other) && other with { Function = 0 } == address);
            var function = new PciFunction(machine, device, address, spec, bus, multiFunction);
            bus.Add(function);
            device.BusData = function;
            return KResult.Ok;
        }
        catch (Exception e) when (e is JsonException or System.IO.InvalidDataException or InvalidOperationException)
        {
            throw new System.IO.InvalidDataException($"{machine.Spec.Name}: PCI device {device.Name}: {e.Message}", e);
        }
    }
}
