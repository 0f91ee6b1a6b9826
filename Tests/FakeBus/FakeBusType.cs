using KernelModel.Kernel;
using KernelModel.Vfio;

namespace KernelModel.Tests.FakeBus;

/// <summary>
/// The bus type "fake": a device on it is nothing but its MMIO ranges, so there is no bus model
/// to build beyond checking that it decodes at least one.
/// </summary>
[BusType(Name)]
public sealed class FakeBusType : IBusType
{
    /// <summary>The bus name machine specs use.</summary>
    public const string Name = "fake";

    /// <inheritdoc />
    public KResult Setup(Machine machine, Device device) => device.Mmio.Count > 0 ? KResult.Ok : Errno.EINVAL;
}
