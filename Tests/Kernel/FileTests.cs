using KernelModel.Kernel;
using KernelModel.Tests.Hosting;
using KernelModel.Tests.Mm;

namespace KernelModel.Tests.Kernel;

public class FileTests : MachineTestBase
{
    private const ulong Page = 4096;

    private (UserProcess Process, MmioTestFile Device) CreateSut()
    {
        var (machine, process) = BootAndSpawn();
        Assert.True(machine.TryGetDevice("0000:02:00.0", out var gpu));
        return (process, new MmioTestFile(machine, gpu.Mmio[0]));
    }

    private static File FileOf(UserProcess process, int fd)
    {
        var file = process.Files.Get(fd).Value;
        file.Put();
        return file;
    }

    [Fact]
    public void Get_LiveFile_AddsReference()
    {
        var file = new File(new RecordingFileOperations(), new Inode("x"));

        var same = file.Get();

        Assert.Same(file, same);
        Assert.Equal(2, file.RefCount);
    }

    [Fact]
    public void Put_LastReference_CallsReleaseOnce()
    {
        var ops = new RecordingFileOperations();
        var file = new File(ops, new Inode("x"));
        file.Get();

        file.Put();
        var releasedAfterFirst = ops.Releases;
        file.Put();

        Assert.Equal(0, releasedAfterFirst);
        Assert.Equal(1, ops.Releases);
        Assert.True(file.IsReleased);
    }

    [Fact]
    public void Put_ReleasedFile_Throws()
    {
        var file = new File(new RecordingFileOperations(), new Inode("x"));
        file.Put();

        Assert.Throws<InvalidOperationException>(file.Put);
        Assert.Throws<InvalidOperationException>(() => file.Get());
    }

    [Fact]
    public void Mmap_FileMapped_VmaHoldsReference()
    {
        var (process, device) = CreateSut();
        var fd = process.Open(MmioTestFile.Path);
        var file = FileOf(process, fd);

        var va = process.Mmap(0, 4 * Page, Prot.Read | Prot.Write, MapFlags.Shared, fd, 0);

        Assert.True(va > 0, $"mmap: {va}");
        Assert.Equal(2, file.RefCount);
        Assert.Same(file, process.Mm.FindVma((ulong)va)!.File);
        Assert.Equal(0, device.Releases);
    }

    [Fact]
    public void Close_WhileMapped_ReleasesOnlyAfterMunmap()
    {
        var (process, device) = CreateSut();
        var fd = process.Open(MmioTestFile.Path);
        var file = FileOf(process, fd);
        var va = (ulong)process.Mmap(0, 4 * Page, Prot.Read | Prot.Write, MapFlags.Shared, fd, 0);

        var closed = process.Close(fd);
        var releasesAfterClose = device.Releases;
        var unmapped = process.Munmap(va, 4 * Page);

        Assert.Equal(0, closed);
        Assert.Equal(0, releasesAfterClose);
        Assert.Equal(0, unmapped);
        Assert.Equal(1, device.Releases);
        Assert.True(file.IsReleased);
    }

    [Fact]
    public void Munmap_SplitMappingPartly_ReleasesOnlyAfterLastPiece()
    {
        var (process, device) = CreateSut();
        var fd = process.Open(MmioTestFile.Path);
        var file = FileOf(process, fd);
        var va = (ulong)process.Mmap(0, 4 * Page, Prot.Read, MapFlags.Shared, fd, 0);
        process.Close(fd);

        process.Munmap(va + Page, Page);
        var refsAfterSplit = file.RefCount;
        process.Munmap(va, Page);
        var releasesBeforeLast = device.Releases;
        process.Munmap(va + 2 * Page, 2 * Page);

        Assert.Equal(2, refsAfterSplit);
        Assert.Equal(0, releasesBeforeLast);
        Assert.Equal(1, device.Releases);
        Assert.Equal(0, file.Mapping.MappedVmaCount);
    }

    [Fact]
    public void Exit_OpenAndMapped_ReleasesFile()
    {
        var (process, device) = CreateSut();
        var fd = process.Open(MmioTestFile.Path);
        process.Mmap(0, Page, Prot.Read, MapFlags.Shared, fd, 0);

        process.Exit();

        Assert.Equal(1, device.Releases);
        Assert.Empty(process.Mm.Vmas);
    }

    [Fact]
    public void Mapping_TwoFilesOfOneInode_ShareAddressSpace()
    {
        var inode = new Inode("shared");
        var a = new File(new RecordingFileOperations(), inode);
        var b = new File(new RecordingFileOperations(), inode);

        Assert.Same(a.Mapping, b.Mapping);
        Assert.Same(inode, a.Mapping.Host);
        Assert.NotEqual(inode.Ino, new Inode("other").Ino);
    }
}
