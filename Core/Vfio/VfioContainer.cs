using KernelModel.Kernel;

namespace KernelModel.Vfio;

/// <summary>A container (/dev/vfio/vfio): its groups and, once SET_IOMMU chose one, its IOMMU backend state.</summary>
internal sealed class VfioContainer(VfioCore core)
{
    private readonly List<VfioGroup> _groups = [];
    private readonly Lock _lock = new();
    private IVfioIommuContainer? _iommu;

    public VfioCore Core { get; } = core;

    public bool HasIommu => _iommu is not null;

    public IVfioIommuContainer? Iommu => _iommu;

    public string? BackendName { get; private set; }

    public KResult AddGroup(VfioGroup group)
    {
        lock (_lock)
        {
            if (_iommu is not null)
            {
                var attached = _iommu.AttachGroup(group.IommuGroup);
                if (!attached.IsOk)
                {
                    return attached;
                }
            }

            _groups.Add(group);
            return KResult.Ok;
        }
    }

    // Like __vfio_group_unset_container(): the last group out releases the backend.
    public void RemoveGroup(VfioGroup group)
    {
        lock (_lock)
        {
            _iommu?.DetachGroup(group.IommuGroup);
            _groups.Remove(group);
            if (_groups.Count == 0 && _iommu is not null)
            {
                _iommu.Release();
                _iommu = null;
                BackendName = null;
            }
        }
    }

    // Like vfio_ioctl_set_iommu(): needs a group and no backend yet; tries each backend that
    // claims the extension, and takes the first whose open and attach of every group succeed.
    public long SetIommu(ulong type)
    {
        lock (_lock)
        {
            if (_groups.Count == 0 || _iommu is not null)
            {
                return -(long)Errno.EINVAL;
            }

            long ret = -(long)Errno.ENODEV;
            foreach (var (name, backend) in Core.Backends)
            {
                if (backend.CheckExtension(type) <= 0)
                {
                    continue;
                }

                var opened = backend.Open(Core.IommuContext, type);
                if (!opened.TryGetValue(out var data))
                {
                    ret = -(long)opened.Error;
                    continue;
                }

                var attachedCount = 0;
                var failed = Errno.None;
                foreach (var g in _groups)
                {
                    var attached = data.AttachGroup(g.IommuGroup);
                    if (!attached.IsOk)
                    {
                        failed = attached.Error;
                        break;
                    }

                    attachedCount++;
                }

                if (failed != Errno.None)
                {
                    foreach (var g in _groups.Take(attachedCount))
                    {
                        data.DetachGroup(g.IommuGroup);
                    }

                    data.Release();
                    ret = -(long)failed;
                    continue;
                }

                _iommu = data;
                BackendName = name;
                return 0;
            }

            return ret;
        }
    }

    // Like vfio_ioctl_check_extension(): before SET_IOMMU every backend is asked; after, only the chosen one.
    public long CheckExtension(ulong extension)
    {
        var iommu = _iommu;
        if (iommu is not null)
        {
            return iommu.Ioctl(VfioIoctls.CheckExtension, new IoctlArg(extension));
        }

        foreach (var (_, backend) in Core.Backends)
        {
            var r = backend.CheckExtension(extension);
            if (r > 0)
            {
                return r;
            }
        }

        return 0;
    }
}

/// <summary>The file operations of /dev/vfio/vfio.</summary>
internal sealed class VfioContainerFile : FileOperations
{
    public static readonly VfioContainerFile Instance = new();

    public override long Ioctl(File file, uint request, IoctlArg arg)
    {
        var container = (VfioContainer)file.PrivateData!;
        switch (request)
        {
            case VfioIoctls.GetApiVersion:
                return VfioIoctls.ApiVersion;
            case VfioIoctls.CheckExtension:
                return container.CheckExtension(arg.Value);
            case VfioIoctls.SetIommu:
                return container.SetIommu(arg.Value);
            default:
                // vfio_fops_unl_ioctl(): anything else goes to the backend, EINVAL without one.
                return container.Iommu is { } iommu ? iommu.Ioctl(request, arg) : -(long)Errno.EINVAL;
        }
    }
}
