using Apex.Bench;
using Apex.Tests.Infrastructure;

namespace Apex.Tests.Bench;

public sealed class LoadGeneratorTests
{
    [Fact]
    public async Task TheLoadGeneratorDrivesARealServerAndCountsEveryEvent()
    {
        await using var server = await ApexTestServer.StartAsync();
        var report = await LoadGenerator.RunAsync(new LoadOptions(server.BaseAddress, Users: 5, MessagesPerUser: 2, TimeLimit: TimeSpan.FromSeconds(90), IdleSockets: 10,
            ServerPid: Environment.ProcessId));

        Assert.False(report.TimedOut);
        Assert.Equal(10, report.RunsCompleted);
        Assert.Equal(0, report.RunsFailed);
        Assert.Equal((0, 0, 0), (report.Lost, report.Duplicated, report.Foreign));
        Assert.True(report.Events >= 10 * 10, $"only {report.Events} events");
        Assert.True(report.TimeToFirstEventMs.P50 > 0 && report.TimeToFirstEventMs.P99 >= report.TimeToFirstEventMs.P50);
        Assert.True(report.TimeToTerminalMs.P50 >= report.TimeToFirstEventMs.P50);
        Assert.NotNull(report.RssAtRestMb);
        Assert.NotNull(report.IdleKbPerSocket);
        Assert.NotNull(report.IdleMarginalKbPerSocket);
        Assert.NotNull(report.RssWithHalfTheIdleSocketsMb);
    }
}
