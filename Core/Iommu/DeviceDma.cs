using KernelModel.Mm;

namespace KernelModel.Iommu;

/// <summary>
/// Device-initiated DMA: every access goes through the device's group's IOMMU domain, page by
/// page. An unmapped IOVA (or one mapped without the needed permission, or a group with no domain)
/// is a recorded IOMMU fault and the DMA stops there with -EFAULT. A translation that lands on
/// another device's MMIO range is peer-to-peer and reaches that range's backing store.
/// </summary>
public sealed class DeviceDma
{
    private readonly Machine _machine;
    private readonly Device? _device;
    private readonly string _name;

    internal DeviceDma(Machine machine, string name, Device? device)
    {
        _machine = machine;
        _name = name;
        _device = device;
    }

    /// <summary>Reads device memory at <paramref name="iova"/>: bytes read, or a negative errno.</summary>
    public long Read(ulong iova, Span<byte> buffer) => Transfer(iova, buffer, default, write: false);

    /// <summary>Writes <paramref name="buffer"/> at <paramref name="iova"/>: bytes written, or a negative errno.</summary>
    public long Write(ulong iova, ReadOnlySpan<byte> buffer) => Transfer(iova, default, buffer, write: true);

    /// <summary>As <see cref="Read(ulong, Span{byte})"/>.</summary>
    public long Read(Iova iova, Span<byte> buffer) => Read(iova.Value, buffer);

    /// <summary>As <see cref="Write(ulong, ReadOnlySpan{byte})"/>.</summary>
    public long Write(Iova iova, ReadOnlySpan<byte> buffer) => Write(iova.Value, buffer);

    private long Transfer(ulong iova, Span<byte> readInto, ReadOnlySpan<byte> writeFrom, bool write)
    {
        if (_device is null)
        {
            return -(long)Errno.ENODEV;
        }

        var length = write ? writeFrom.Length : readInto.Length;
        if (length > 0 && iova > ulong.MaxValue - (ulong)(length - 1))
        {
            return -(long)Errno.EINVAL;
        }

        var phys = _machine.Memory;
        var done = 0;
        while (done < length)
        {
            var at = iova + (ulong)done;
            var domain = _device.IommuGroup?.Domain;
            if (domain is null || !domain.TryTranslate(at, out var pa, out var prot, out var leafSize))
            {
                return Fault(at, write, domain is null ? "no domain attached (DMA blocked)" : "IOVA not mapped");
            }

            if ((prot & (write ? IommuProt.Write : IommuProt.Read)) == 0)
            {
                return Fault(at, write, write ? "IOVA mapped read-only" : "IOVA mapped write-only");
            }

            // Stay within one IOMMU leaf and one CPU page, so each chunk has one backing.
            var pageLeft = phys.Geometry.PageSize - (pa & (phys.Geometry.PageSize - 1));
            var leafLeft = leafSize - (at & (leafSize - 1));
            var n = (int)Math.Min((ulong)(length - done), Math.Min(pageLeft, leafLeft));

            if (phys.IsRam(pa))
            {
                _machine.Sanitizer.CheckRam(phys, _name, new Iova(at), pa, write);
            }
            else if (phys.TryGetMmio(pa, out var region))
            {
                _machine.Sanitizer.CheckMmio(region, _name, new Iova(at), pa, write);
            }

            if (write)
            {
                phys.Write(new PhysAddr(pa), writeFrom.Slice(done, n));
            }
            else
            {
                phys.Read(new PhysAddr(pa), readInto.Slice(done, n));
            }

            done += n;
        }

        return done;
    }

    private long Fault(ulong iova, bool write, string reason)
    {
        _machine.RecordIommuFault(new IommuFault(_name, new Iova(iova), write, reason));
        return -(long)Errno.EFAULT;
    }
}
