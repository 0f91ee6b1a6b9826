using KernelModel.Kernel;

namespace KernelModel.Tests.Kernel;

public class FdTableTests
{
    private static FdTable CreateSut(int limit = 1024) => new(limit);

    private static File NewFile(RecordingFileOperations? ops = null) => new(ops ?? new RecordingFileOperations(), new Inode("test"));

    [Fact]
    public void Install_EmptyTable_ReturnsFdsInOrderFromZero()
    {
        var table = CreateSut();

        var fds = Enumerable.Range(0, 3).Select(_ => table.Install(NewFile()).Value).ToArray();

        Assert.Equal([0, 1, 2], fds);
        Assert.Equal(3, table.Count);
    }

    [Fact]
    public void Install_AfterClose_ReusesLowestFreeFd()
    {
        var table = CreateSut();
        for (var i = 0; i < 4; i++)
        {
            table.Install(NewFile());
        }

        table.Close(2);
        table.Close(1);

        Assert.Equal(1, table.Install(NewFile()).Value);
        Assert.Equal(2, table.Install(NewFile()).Value);
        Assert.Equal(4, table.Install(NewFile()).Value);
    }

    [Fact]
    public void Install_TableFull_ReturnsEmfileAndKeepsCallerReference()
    {
        var table = CreateSut(limit: 2);
        table.Install(NewFile());
        table.Install(NewFile());
        var third = NewFile();

        var result = table.Install(third);

        Assert.Equal(Errno.EMFILE, result.Error);
        Assert.Equal(2, table.Count);
        Assert.Equal(1, third.RefCount);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(1)]
    [InlineData(1000)]
    public void Get_BadFd_ReturnsEbadf(int fd)
    {
        var table = CreateSut();
        table.Install(NewFile());

        Assert.Equal(Errno.EBADF, table.Get(fd).Error);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(5)]
    public void Close_BadFd_ReturnsEbadf(int fd)
    {
        var table = CreateSut();

        Assert.Equal(Errno.EBADF, table.Close(fd).Error);
    }

    [Fact]
    public void Close_Twice_SecondIsEbadf()
    {
        var table = CreateSut();
        var fd = table.Install(NewFile()).Value;

        var first = table.Close(fd);
        var second = table.Close(fd);

        Assert.True(first.IsOk);
        Assert.Equal(Errno.EBADF, second.Error);
    }

    [Fact]
    public void Get_OpenFd_TakesReferenceTheCallerPuts()
    {
        var table = CreateSut();
        var file = NewFile();
        var fd = table.Install(file).Value;

        var got = table.Get(fd).Value;

        Assert.Same(file, got);
        Assert.Equal(2, file.RefCount);
        got.Put();
        Assert.Equal(1, file.RefCount);
    }

    [Fact]
    public void Close_LastReference_ReleasesFile()
    {
        var ops = new RecordingFileOperations();
        var table = CreateSut();
        var file = NewFile(ops);
        var fd = table.Install(file).Value;

        table.Close(fd);

        Assert.True(file.IsReleased);
        Assert.Equal(1, ops.Releases);
    }

    [Fact]
    public void CloseAll_OpenFds_ReleasesEveryFileAndEmptiesTable()
    {
        var ops = new RecordingFileOperations();
        var table = CreateSut();
        for (var i = 0; i < 3; i++)
        {
            table.Install(NewFile(ops));
        }

        table.CloseAll();

        Assert.Equal(0, table.Count);
        Assert.Equal(3, ops.Releases);
        Assert.Equal(0, table.Install(NewFile()).Value);
    }
}

/// <summary>File operations that count releases and otherwise behave as missing ops.</summary>
internal sealed class RecordingFileOperations : FileOperations
{
    public int Releases { get; private set; }

    public override void Release(File file) => Releases++;
}
