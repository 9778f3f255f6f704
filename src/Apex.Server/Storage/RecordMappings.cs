using Apex.Client;

namespace Apex.Server.Storage;

/// <summary>Stored records as the API shows them.</summary>
internal static class RecordMappings
{
    public static ThreadDto ToDto(this ThreadRecord t) => new(t.Id, t.Title, t.Strategy, t.LastSeq, t.CreatedAt, t.UpdatedAt);

    public static MessageDto ToDto(this MessageRecord m) => new(m.Id, m.ThreadId, m.RunId, m.Role, m.Content, m.CreatedAt);

    public static RunDto ToDto(this RunRecord r) => new(r.Id, r.ThreadId, r.Status, r.Strategy, r.MessageId, r.CreatedAt, r.StartedAt, r.EndedAt, r.Error,
        r.Results is null ? null : System.Text.Json.JsonDocument.Parse(r.Results).RootElement.Clone(), r.AgentId, r.AgentVersion);

    public static UserDto ToDto(this UserRecord user) => new(user.Id, user.Email, user.DisplayName, user.Tier, user.CreatedAt);
}
