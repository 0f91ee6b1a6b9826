using KernelModel.Kernel;

namespace KernelModel.Mm;

/// <summary>
/// /dev/mem: maps any physical range as VM_IO|VM_PFNMAP (the "non-VFIO PFNMAP" the type1 backend
/// must refuse). As with CONFIG_STRICT_DEVMEM, which distributions ship, RAM may not be mapped (EPERM).
/// Private mappings are allowed, as private_mapping_ok() does on MMU machines.
/// </summary>
internal sealed class DevMem(PhysicalMemory phys) : FileOperations
{
    public const string Path = "/dev/mem";

    // Like mmap_mem(): the file offset is the physical address.
    public override KResult Mmap(File file, Vma vma)
    {
        var shift = phys.Geometry.PageShift;
        var start = vma.PgOff << shift;
        if (vma.PgOff > (ulong.MaxValue >> shift) || start > ulong.MaxValue - vma.Length)
        {
            return Errno.EINVAL;
        }

        if (phys.Ram.Any(r => r.Start.Value < start + vma.Length && start < r.End))
        {
            return Errno.EPERM;
        }

        return vma.RemapPfnRange(vma.Start, new Pfn(vma.PgOff), vma.Length);
    }
}
