using KernelModel.Kernel;
using KernelModel.Mm;

namespace KernelModel.Vfio;

/// <summary>
/// The file operations of a vfio device fd: everything is dispatched to the driver's device.
/// Every device fd shares the device's inode, so mmaps of any of them land in one address space.
/// </summary>
internal sealed class VfioDeviceFile : FileOperations
{
    public static readonly VfioDeviceFile Instance = new();

    private static VfioDevice DeviceOf(File file) => (VfioDevice)file.PrivateData!;

    public override long Read(File file, Span<byte> buffer, long offset) => DeviceOf(file).Read(buffer, offset);

    public override long Write(File file, ReadOnlySpan<byte> buffer, long offset) => DeviceOf(file).Write(buffer, offset);

    public override long Ioctl(File file, uint request, IoctlArg arg) => DeviceOf(file).Ioctl(request, arg);

    public override KResult Mmap(File file, Vma vma) => DeviceOf(file).Mmap(vma);

    // Like vfio_device_fops_release(): the last close runs close_device (where drivers send the
    // Release notification), then the group's container user goes.
    public override void Release(File file)
    {
        var device = DeviceOf(file);
        var core = device.Core!;
        var last = device.DecrementOpen() == 0;
        if (last)
        {
            device.CloseDevice();
        }

        core.PutContainerUser(device);
        if (last)
        {
            core.OnDeviceReleased(device);
        }

        device.Put();
    }
}

/// <summary>The ioctl numbers the core dispatches on (values from linux/vfio.h; checked by the uAPI conformance test).</summary>
internal static class VfioIoctls
{
    public const int ApiVersion = 0;
    public const uint GetApiVersion = (';' << 8) | 100;
    public const uint CheckExtension = (';' << 8) | 101;
    public const uint SetIommu = (';' << 8) | 102;
    public const uint GroupGetStatus = (';' << 8) | 103;
    public const uint GroupSetContainer = (';' << 8) | 104;
    public const uint GroupUnsetContainer = (';' << 8) | 105;
    public const uint GroupGetDeviceFd = (';' << 8) | 106;
}
