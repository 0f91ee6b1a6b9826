using KernelModel.Kernel;
using KernelModel.Vfio;

namespace KernelModel.Tests.FakeBus;

/// <summary>
/// The vfio drivers of the fake bus. Stateless (one instance serves every machine booted with the
/// plugin set); they differ only in whether their devices opt in to peer-to-peer.
/// </summary>
public abstract class FakeVfioDriver(bool allowsPeerToPeer) : IVfioBusDriver
{
    /// <inheritdoc />
    public KResult<VfioDevice> Probe(VfioCore core, Device device)
    {
        if (device.Mmio.Count == 0)
        {
            return Errno.ENODEV;
        }

        var registered = core.RegisterDevice(new FakeVfioDevice(device, allowsPeerToPeer));
        return registered.TryGetValue(out var fake) ? fake : registered.Error;
    }

    /// <inheritdoc />
    public void Remove(VfioCore core, VfioDevice device) => core.UnregisterDevice(device);
}

/// <summary>"vfio-fake": devices opt in to peer-to-peer, so a backend may map their MMIO for DMA.</summary>
[VfioBusDriver(Name, FakeBusType.Name)]
public sealed class FakeVfioP2pDriver() : FakeVfioDriver(allowsPeerToPeer: true)
{
    /// <summary>The driver name.</summary>
    public const string Name = "vfio-fake";
}

/// <summary>"vfio-fake-nop2p": devices do not opt in; a VMA lookup of them is ENODEV.</summary>
[VfioBusDriver(Name, FakeBusType.Name)]
public sealed class FakeVfioNoP2pDriver() : FakeVfioDriver(allowsPeerToPeer: false)
{
    /// <summary>The driver name.</summary>
    public const string Name = "vfio-fake-nop2p";
}
