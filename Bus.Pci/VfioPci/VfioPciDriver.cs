using KernelModel.Kernel;
using KernelModel.Vfio;

namespace KernelModel.Pci.VfioPci;

/// <summary>
/// The vfio-pci driver (vfio_pci.c + vfio_pci_core.c): probe registers a <see cref="VfioPciDevice"/>
/// for a PCI function with the vfio core; remove unregisters it.
/// </summary>
[VfioBusDriver("vfio-pci", "pci")]
public sealed class VfioPciDriver : IVfioBusDriver
{
    // Like vfio_pci_probe() → vfio_pci_core_register_device(): only functions the PCI bus type
    // built can be driven; the vfio core refuses a function without an IOMMU group (EINVAL).
    /// <inheritdoc />
    public KResult<VfioDevice> Probe(VfioCore core, Device device)
    {
        if (!PciHost.TryGetFunction(device, out var function))
        {
            return Errno.ENODEV;
        }

        var registered = core.RegisterDevice(new VfioPciDevice(function));
        if (!registered.TryGetValue(out var vdev))
        {
            return registered.Error;
        }

        function.ErrorHandler = vdev;
        return vdev;
    }

    // Like vfio_pci_remove(): the core calls the driver's request op while a user holds the
    // device and completes the unregistration at its last close.
    /// <inheritdoc />
    public void Remove(VfioCore core, VfioDevice device)
    {
        if (device is VfioPciDevice vdev && ReferenceEquals(vdev.Function.ErrorHandler, vdev))
        {
            vdev.Function.ErrorHandler = null;
        }

        core.UnregisterDevice(device);
    }
}
