using KernelModel.Iommu;
using KernelModel.Kernel;
using KernelModel.Vfio;

namespace KernelModel.Tests.FakeBus;

/// <summary>
/// A test double of an IOMMU backend: it claims VFIO_TYPE1_IOMMU so that VFIO_SET_IOMMU succeeds
/// without the type1 plugin, keeps the groups it is attached to and maps nothing. It lets the
/// vfio core be tested on its own; it is not a model of any kernel backend.
/// </summary>
[VfioIommuBackend(Name, Extensions = new[] { Type1Iommu })]
public sealed class FakeIommuBackend : IVfioIommuBackend
{
    /// <summary>The backend name.</summary>
    public const string Name = "fake-iommu";

    /// <summary>VFIO_TYPE1_IOMMU, the only extension it claims.</summary>
    public const ulong Type1Iommu = 1;

    /// <summary>VFIO_CHECK_EXTENSION.</summary>
    private const uint CheckExtensionIoctl = (';' << 8) | 101;

    /// <inheritdoc />
    public long CheckExtension(ulong extension) => extension == Type1Iommu ? 1 : 0;

    /// <inheritdoc />
    public KResult<IVfioIommuContainer> Open(VfioIommuContext context, ulong type) =>
        type == Type1Iommu ? new Container() : Errno.EINVAL;

    private sealed class Container : IVfioIommuContainer
    {
        private readonly List<IommuGroup> _groups = [];
        private bool _released;

        public long Ioctl(uint request, IoctlArg arg) => request switch
        {
            CheckExtensionIoctl => arg.Value == Type1Iommu ? 1 : 0,
            _ => -(long)Errno.ENOTTY,
        };

        public KResult AttachGroup(IommuGroup group)
        {
            if (_released || _groups.Contains(group))
            {
                return Errno.EBUSY;
            }

            _groups.Add(group);
            return KResult.Ok;
        }

        public void DetachGroup(IommuGroup group)
        {
            if (!_groups.Remove(group))
            {
                throw new InvalidOperationException($"fake-iommu: detach of group {group.Id}, which is not attached");
            }
        }

        public void Release()
        {
            if (_released || _groups.Count != 0)
            {
                throw new InvalidOperationException("fake-iommu: release twice or with groups attached");
            }

            _released = true;
        }
    }
}
