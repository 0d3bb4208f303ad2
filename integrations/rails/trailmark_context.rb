# Trailmark capture context for Rails (the whole integration).
#
# Include in ApplicationController. Each request runs in one database
# transaction that starts with SELECT set_config('trailmark.*', ..., true), so
# every write the request makes -- update_all, insert_all, raw SQL through
# the connection, callbacks or not -- is captured with who made it, and the
# values end with the transaction: the pooled connection carries nothing into
# the next request. (A request that fails rolls back its writes, as one
# transaction does.)
module TrailmarkContext
  NAMES = %w[actor_id actor_type actor_name ip user_agent request_id session_id tenant reason].freeze

  def self.included(base)
    base.around_action :with_trailmark_context
  end

  # The SQL that sets `context` on `connection`'s current transaction.
  def self.set_config_sql(connection, context)
    pairs = NAMES.filter_map do |name|
      value = context[name.to_sym] || context[name]
      next if value.nil? || value.to_s.empty?

      "set_config(#{connection.quote("trailmark.#{name}")}, #{connection.quote(value.to_s)}, true)"
    end
    pairs.empty? ? nil : "SELECT #{pairs.join(', ')}"
  end

  private

  # Override to name the actor your authentication knows.
  def trailmark_context
    user = respond_to?(:current_user, true) ? current_user : nil
    {
      actor_id: user&.id,
      actor_type: user ? "user" : nil,
      actor_name: user.respond_to?(:email) ? user.email : nil,
      ip: request.remote_ip,
      user_agent: request.user_agent,
      request_id: request.request_id,
    }
  end

  def with_trailmark_context
    ActiveRecord::Base.transaction do
      connection = ActiveRecord::Base.connection
      sql = TrailmarkContext.set_config_sql(connection, trailmark_context)
      connection.execute(sql) if sql
      yield
    end
  end
end
