using KernelModel.Kernel;

namespace KernelModel.Mm;

/// <summary>Shared anonymous memory: a shmem file whose pages live in its inode's page cache.</summary>
internal sealed class ShmemFile : FileOperations
{
    private static readonly ShmemFile s_instance = new();

    public static File Create(PhysicalMemory phys) => new(s_instance, new Inode("/dev/zero (deleted)"), phys);

    public override void Release(File file)
    {
        // The last VMA is gone: drop the page cache (the inode dies with its last file).
        if (file.PrivateData is PhysicalMemory phys)
        {
            file.Mapping.Truncate(phys);
        }
    }
}

/// <summary>The fault path of shmem: find or allocate the page-cache folio at the faulting offset.</summary>
internal sealed class ShmemVmOperations : VmOperations
{
    public static readonly ShmemVmOperations Instance = new();

    public override VmFaultResult Fault(VmFault vmf)
    {
        var phys = vmf.Vma.Mm.Phys;
        var file = vmf.Vma.File!;
        var folio = file.Mapping.FindOrAddPage(vmf.PgOff, () =>
        {
            var f = phys.AllocFolio(0, FolioFlags.Shmem);
            if (f is not null)
            {
                phys.ZeroFolio(f);
            }

            return f;
        });
        if (folio is null)
        {
            return VmFaultResult.Oom;
        }

        vmf.Folio = folio;
        return VmFaultResult.None;
    }

    public override string Name(Vma vma) => "/dev/zero (deleted)";
}
