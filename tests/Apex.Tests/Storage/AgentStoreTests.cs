using Apex.Client;
using Apex.Server.Storage;

namespace Apex.Tests.Storage;

/// <summary>Users' agent and team definitions: versions, owner scoping, shared ones, names and limits; the same tests on SQLite and PostgreSQL.</summary>
public abstract class AgentStoreTests<TDatabase> : StoreTests<TDatabase> where TDatabase : ITestDatabase, new()
{
    private IAgentStore Agents => new SqlAgentStore(Database);

    private AgentRecord Record(string userId, string name, string kind = AgentKinds.Agent, bool shared = false) =>
        new(_ids.NewId(), userId, kind, name, 1, shared, $$"""{"name":"{{name}}","instructions":"v1"}""", _now, _now);

    [Fact]
    public async Task AnEditMakesANewVersionAndEveryVersionStaysReadableByItsOwnerOnly()
    {
        var owner = await UserAsync();
        var other = await UserAsync();
        var agent = Record(owner, "helper");
        Assert.Equal(AgentWriteOutcome.Saved, await Agents.CreateAsync(agent, 10, default));

        var (outcome, saved) = await Agents.UpdateAsync(owner, false, AgentKinds.Agent, agent.Id, "helper", false, """{"name":"helper","instructions":"v2"}""", _now.AddMinutes(1), default);
        Assert.Equal(AgentWriteOutcome.Saved, outcome);
        Assert.Equal(2, saved!.Version);
        var latest = await Agents.GetAsync(owner, AgentKinds.Agent, agent.Id, default);
        Assert.Equal(2, latest!.Version);
        Assert.Contains("v2", latest.Definition, StringComparison.Ordinal);
        Assert.Contains("v1", (await Agents.GetVersionAsync(owner, agent.Id, 1, default))!.Definition, StringComparison.Ordinal);

        // Another user: as if it did not exist, by id, by name, in lists and for writes.
        Assert.Null(await Agents.GetAsync(other, AgentKinds.Agent, agent.Id, default));
        Assert.Null(await Agents.FindAsync(other, agent.Id, default));
        Assert.Null(await Agents.FindAsync(other, "helper", default));
        Assert.Null(await Agents.GetVersionAsync(other, agent.Id, 1, default));
        Assert.Empty(await Agents.ListAsync(other, AgentKinds.Agent, default));
        Assert.Equal(AgentWriteOutcome.NotFound, (await Agents.UpdateAsync(other, true, AgentKinds.Agent, agent.Id, "x", false, "{}", _now, default)).Outcome);
        Assert.Equal(AgentWriteOutcome.NotFound, await Agents.DeleteAsync(other, true, AgentKinds.Agent, agent.Id, default));
        // The kind is part of the address: an agent is not a team.
        Assert.Null(await Agents.GetAsync(owner, AgentKinds.Team, agent.Id, default));

        Assert.Equal(agent.Id, (await Agents.FindAsync(owner, "helper", default))!.Id);
        Assert.Equal(AgentWriteOutcome.Saved, await Agents.DeleteAsync(owner, false, AgentKinds.Agent, agent.Id, default));
        Assert.Null(await Agents.GetAsync(owner, AgentKinds.Agent, agent.Id, default));
        Assert.Null(await Agents.FindAsync(owner, "helper", default));
        // A run queued with version 2 still finds it.
        Assert.Contains("v2", (await Agents.GetVersionAsync(owner, agent.Id, 2, default))!.Definition, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NamesAreUniquePerOwnerAndTheNumberOfDefinitionsIsCapped()
    {
        var owner = await UserAsync();
        var other = await UserAsync();
        Assert.Equal(AgentWriteOutcome.Saved, await Agents.CreateAsync(Record(owner, "one"), 2, default));
        Assert.Equal(AgentWriteOutcome.NameTaken, await Agents.CreateAsync(Record(owner, "one", AgentKinds.Team), 2, default));
        Assert.Equal(AgentWriteOutcome.Saved, await Agents.CreateAsync(Record(other, "one"), 2, default));
        var two = Record(owner, "two", AgentKinds.Team);
        Assert.Equal(AgentWriteOutcome.Saved, await Agents.CreateAsync(two, 2, default));
        Assert.Equal(AgentWriteOutcome.LimitReached, await Agents.CreateAsync(Record(owner, "three"), 2, default));
        Assert.Equal(AgentWriteOutcome.NameTaken, (await Agents.UpdateAsync(owner, false, AgentKinds.Team, two.Id, "one", false, "{}", _now, default)).Outcome);
        Assert.Equal(["one"], (await Agents.ListAsync(owner, AgentKinds.Agent, default)).Select(a => a.Name));
        Assert.Equal(["two"], (await Agents.ListAsync(owner, AgentKinds.Team, default)).Select(a => a.Name));
    }

    [Fact]
    public async Task ASharedDefinitionIsVisibleToEveryoneAndChangedOnlyByAnAdmin()
    {
        var admin = await UserAsync();
        var user = await UserAsync();
        var shared = Record(admin, "house", shared: true);
        Assert.Equal(AgentWriteOutcome.Saved, await Agents.CreateAsync(shared, 10, default));
        Assert.Equal(shared.Id, (await Agents.FindAsync(user, "house", default))!.Id);
        Assert.Equal(["house"], (await Agents.ListAsync(user, AgentKinds.Agent, default)).Select(a => a.Name));
        Assert.NotNull(await Agents.GetVersionAsync(user, shared.Id, 1, default));
        Assert.Equal(AgentWriteOutcome.Forbidden, (await Agents.UpdateAsync(user, false, AgentKinds.Agent, shared.Id, "house", true, "{}", _now, default)).Outcome);
        Assert.Equal(AgentWriteOutcome.Forbidden, await Agents.DeleteAsync(user, false, AgentKinds.Agent, shared.Id, default));
        // The user's own agent of the same name comes first when a message names it.
        var own = Record(user, "house");
        Assert.Equal(AgentWriteOutcome.Saved, await Agents.CreateAsync(own, 10, default));
        Assert.Equal(own.Id, (await Agents.FindAsync(user, "house", default))!.Id);
        // Making one's own agent shared needs the admin role too.
        Assert.Equal(AgentWriteOutcome.Forbidden, (await Agents.UpdateAsync(user, false, AgentKinds.Agent, own.Id, "house", true, "{}", _now, default)).Outcome);
        Assert.Equal(AgentWriteOutcome.Saved, (await Agents.UpdateAsync(user, true, AgentKinds.Agent, shared.Id, "house", true, """{"v":2}""", _now, default)).Outcome);
        Assert.Equal(AgentWriteOutcome.Saved, await Agents.DeleteAsync(user, true, AgentKinds.Agent, shared.Id, default));
        Assert.Null(await Agents.FindAsync(admin, own.Id, default));
    }

    [Fact]
    public async Task ARunRecordsTheAgentAndVersionItUses()
    {
        var user = await UserAsync();
        var thread = await ThreadAsync(user);
        var message = new MessageRecord(_ids.NewId(), thread, user, null, "user", "hello", _now);
        var run = new RunRecord(_ids.NewId(), thread, user, RunStatus.Queued, QueueStrategies.Enqueue, message.Id, _now, null, null, null, null, false, AgentId: "agent-1", AgentVersion: 3);
        Assert.Equal(SubmitOutcome.Queued, (await Runs.SubmitRunAsync(message with { RunId = run.Id }, run, Queued(run, message.Id), 10, default)).Outcome);
        var stored = await Runs.GetRunAsync(user, run.Id, default);
        Assert.Equal(("agent-1", 3), (stored!.AgentId, stored.AgentVersion));
        var claimed = await Runs.ClaimNextRunAsync("node", 5, _now, _now.AddMinutes(1), default);
        Assert.Equal(("agent-1", (int?)3), (claimed!.AgentId, claimed.AgentVersion));
    }
}

public sealed class SqliteAgentStoreTests : AgentStoreTests<SqliteTestDatabase>;

public sealed class PostgresAgentStoreTests : AgentStoreTests<PostgresTestDatabaseForStores>;
